/*
 * Code Bank's OpenSearch sink connector for Kafka Connect.
 *
 * It indexes each record's value, a JSON object, into an OpenSearch (or
 * Elasticsearch 7) index through the _bulk API, with the document id taken
 * from a field of the JSON (document.id.field), so that a record delivered
 * twice, by the producer or by Connect, overwrites its document instead of
 * adding a copy. Records it cannot index (not JSON, no id, rejected by the
 * index mapping) go to the Kafka Connect error reporter: the dead letter
 * queue when errors.tolerance=all and errors.deadletterqueue.topic.name are
 * set, else the task fails. Transient failures (connection refused, 429,
 * 5xx) are retried: the batch is redelivered after retry.backoff.ms and the
 * consumer offsets do not advance meanwhile.
 *
 * Build: javac --release 17 -cp 'KAFKA/libs/*' -d classes *.java, then put
 * the classes and META-INF/services/org.apache.kafka.connect.sink.SinkConnector
 * (one line: codebank.connect.OpenSearchSinkConnector) into a jar in a
 * directory of the worker's plugin.path. It needs only the Connect API,
 * Jackson and slf4j, which every Kafka Connect worker has.
 */
package codebank.connect;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

public final class OpenSearchSinkConnector extends SinkConnector {
    public static final String VERSION = "1.0.0";

    public static final String URL = "opensearch.url";
    public static final String USERNAME = "opensearch.username";
    public static final String PASSWORD = "opensearch.password";
    public static final String INDEX = "index.name";
    public static final String INDEX_DATE_FIELD = "index.date.field";
    public static final String INDEX_DATE_FORMAT = "index.date.format";
    public static final String TRUSTSTORE_LOCATION = "opensearch.ssl.truststore.location";
    public static final String TRUSTSTORE_TYPE = "opensearch.ssl.truststore.type";
    public static final String TRUSTSTORE_PASSWORD = "opensearch.ssl.truststore.password";
    public static final String ID_FIELD = "document.id.field";
    public static final String BATCH_MAX_RECORDS = "batch.max.records";
    public static final String REQUEST_TIMEOUT_MS = "request.timeout.ms";
    public static final String RETRY_BACKOFF_MS = "retry.backoff.ms";

    static final ConfigDef CONFIG_DEF = new ConfigDef()
        .define(URL, Type.LIST, ConfigDef.NO_DEFAULT_VALUE, Importance.HIGH,
            "Base URLs of the cluster, http://host:port or https://host:port, comma separated; "
                + "each request goes to the first that answers.")
        .define(USERNAME, Type.STRING, "", Importance.MEDIUM, "HTTP basic authentication user; empty: none.")
        .define(PASSWORD, Type.PASSWORD, "", Importance.MEDIUM, "HTTP basic authentication password.")
        .define(INDEX, Type.STRING, "", Importance.HIGH, "The index (or alias) written to; empty: the record's topic. "
            + "With index.date.field, the prefix of time-based indices.")
        .define(INDEX_DATE_FIELD, Type.STRING, "", Importance.HIGH,
            "Top-level field of the JSON value holding the document's time (ISO 8601, e.g. 2026-12-01T10:00:00.000000Z): "
                + "each document goes to the index INDEX-TIME, TIME formatted in UTC by index.date.format, so that a "
                + "record delivered again always lands in the index that holds it. Empty: one index.")
        .define(INDEX_DATE_FORMAT, Type.STRING, "yyyy.MM", Importance.MEDIUM,
            "java.time pattern naming the time-based indices: yyyy.MM (monthly, the default), yyyy.MM.dd (daily).")
        .define(TRUSTSTORE_LOCATION, Type.STRING, "", Importance.MEDIUM,
            "CA certificates that https:// URLs are verified against: a PEM file of one or more certificates (such as "
                + "ECK's ca.crt), or a JKS or PKCS12 truststore (opensearch.ssl.truststore.type). Empty: the JVM's.")
        .define(TRUSTSTORE_TYPE, Type.STRING, "PEM", ConfigDef.ValidString.in("PEM", "JKS", "PKCS12"), Importance.LOW,
            "Format of opensearch.ssl.truststore.location: PEM, JKS or PKCS12.")
        .define(TRUSTSTORE_PASSWORD, Type.PASSWORD, "", Importance.LOW, "Password of a JKS or PKCS12 truststore.")
        .define(ID_FIELD, Type.STRING, "", Importance.HIGH,
            "Top-level field of the JSON value whose value (a string or an integer) is the document id. "
                + "Empty: the id is TOPIC+PARTITION+OFFSET, which makes Connect's redeliveries idempotent "
                + "but not a record produced twice.")
        .define(BATCH_MAX_RECORDS, Type.INT, 500, ConfigDef.Range.between(1, 10000), Importance.LOW,
            "Most documents sent in one _bulk request.")
        .define(REQUEST_TIMEOUT_MS, Type.INT, 30000, ConfigDef.Range.atLeast(1000), Importance.LOW,
            "Timeout of one HTTP request.")
        .define(RETRY_BACKOFF_MS, Type.LONG, 1000L, ConfigDef.Range.atLeast(0), Importance.LOW,
            "Wait before Connect redelivers a batch that failed transiently.");

    private Map<String, String> props;

    @Override
    public String version() {
        return VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        AbstractConfig config = new AbstractConfig(CONFIG_DEF, props);
        for (String url : config.getList(URL)) {
            if (!url.startsWith("http://") && !url.startsWith("https://")) {
                throw new ConfigException(URL, url, "must start with http:// or https://");
            }
        }
        try {
            java.time.format.DateTimeFormatter.ofPattern(config.getString(INDEX_DATE_FORMAT));
        } catch (IllegalArgumentException e) {
            throw new ConfigException(INDEX_DATE_FORMAT, config.getString(INDEX_DATE_FORMAT), e.getMessage());
        }
        Trust.sslContext(config); // a truststore that cannot be read fails the connector, not each task
        this.props = Map.copyOf(props);
    }

    @Override
    public Class<? extends Task> taskClass() {
        return OpenSearchSinkTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> configs = new ArrayList<>(maxTasks);
        for (int i = 0; i < maxTasks; i++) {
            configs.add(props);
        }
        return configs;
    }

    @Override
    public void stop() {
    }

    @Override
    public ConfigDef config() {
        return CONFIG_DEF;
    }
}
