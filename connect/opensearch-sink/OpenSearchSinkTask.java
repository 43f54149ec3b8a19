/*
 * The task of Code Bank's OpenSearch sink connector: see OpenSearchSinkConnector.
 */
package codebank.connect;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.DateTimeException;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.Map;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

public final class OpenSearchSinkTask extends SinkTask {
    private static final Logger LOG = LoggerFactory.getLogger(OpenSearchSinkTask.class);

    /** OpenSearch refuses longer ids. */
    private static final int MAX_ID_BYTES = 512;

    private static final ObjectMapper MAPPER = new ObjectMapper()
        .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
        .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
        .enable(JsonGenerator.Feature.WRITE_BIGDECIMAL_AS_PLAIN);

    private List<String> urls;
    private String authorization;
    private String index;
    private String idField;
    private String dateField;
    private DateTimeFormatter dateFormat;
    private int batchMaxRecords;
    private Duration requestTimeout;
    private long retryBackoffMs;
    private HttpClient http;
    private ErrantRecordReporter reporter;
    private int current; // index in urls of the last URL that answered

    /** A record turned into a bulk index action. */
    private record Doc(int position, String index, String id, String source) {
    }

    @Override
    public String version() {
        return OpenSearchSinkConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        AbstractConfig config = new AbstractConfig(OpenSearchSinkConnector.CONFIG_DEF, props);
        urls = new ArrayList<>();
        for (String url : config.getList(OpenSearchSinkConnector.URL)) {
            urls.add(url.endsWith("/") ? url.substring(0, url.length() - 1) : url);
        }
        String user = config.getString(OpenSearchSinkConnector.USERNAME);
        if (!user.isEmpty()) {
            String password = config.getPassword(OpenSearchSinkConnector.PASSWORD).value();
            authorization = "Basic " + Base64.getEncoder()
                .encodeToString((user + ":" + password).getBytes(StandardCharsets.UTF_8));
        }
        index = config.getString(OpenSearchSinkConnector.INDEX);
        idField = config.getString(OpenSearchSinkConnector.ID_FIELD);
        dateField = config.getString(OpenSearchSinkConnector.INDEX_DATE_FIELD);
        dateFormat = DateTimeFormatter.ofPattern(config.getString(OpenSearchSinkConnector.INDEX_DATE_FORMAT)).withZone(ZoneOffset.UTC);
        batchMaxRecords = config.getInt(OpenSearchSinkConnector.BATCH_MAX_RECORDS);
        requestTimeout = Duration.ofMillis(config.getInt(OpenSearchSinkConnector.REQUEST_TIMEOUT_MS));
        retryBackoffMs = config.getLong(OpenSearchSinkConnector.RETRY_BACKOFF_MS);
        HttpClient.Builder builder = HttpClient.newBuilder().connectTimeout(requestTimeout);
        SSLContext ssl = Trust.sslContext(config);
        if (ssl != null) {
            builder.sslContext(ssl);
        }
        http = builder.build();
        try {
            reporter = context.errantRecordReporter();
        } catch (NoSuchMethodError | NoClassDefFoundError e) { // a worker older than Kafka 2.6
            reporter = null;
        }
        LOG.info("OpenSearch sink task started: urls={} index={} id field={} error reporter={} CA={}",
            urls, (index.isEmpty() ? "(topic)" : index) + (dateField.isEmpty() ? "" : "-(" + dateField + " as "
                + config.getString(OpenSearchSinkConnector.INDEX_DATE_FORMAT) + ")"),
            idField.isEmpty() ? "(topic+partition+offset)" : idField, reporter != null,
            ssl == null ? "(the JVM's)" : config.getString(OpenSearchSinkConnector.TRUSTSTORE_LOCATION));
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        List<SinkRecord> all = new ArrayList<>(records);
        DataException[] refused = new DataException[all.size()];
        List<Doc> docs = new ArrayList<>(all.size());
        for (int i = 0; i < all.size(); i++) {
            try {
                Doc doc = toDoc(all.get(i), i);
                if (doc != null) {
                    docs.add(doc);
                }
            } catch (DataException e) {
                refused[i] = e;
            }
        }
        String transientFailure = null;
        for (int from = 0; from < docs.size(); from += batchMaxRecords) {
            String failure = bulk(docs.subList(from, Math.min(docs.size(), from + batchMaxRecords)), refused);
            if (failure != null) {
                transientFailure = failure;
            }
        }
        if (transientFailure != null) {
            // Connect hands the whole batch over again: documents already
            // indexed are overwritten with the same content, and refused
            // records are reported then, once.
            throw retry(transientFailure);
        }
        for (int i = 0; i < refused.length; i++) { // in offset order
            if (refused[i] != null) {
                reject(all.get(i), refused[i]);
            }
        }
    }

    /** toDoc returns the index action for record, null for a tombstone. */
    private Doc toDoc(SinkRecord record, int position) {
        Object value = record.value();
        if (value == null) {
            LOG.debug("skipping the null value at {}", where(record));
            return null;
        }
        JsonNode json;
        try {
            if (value instanceof String s) {
                json = MAPPER.readTree(s);
            } else if (value instanceof byte[] b) {
                json = MAPPER.readTree(b);
            } else if (value instanceof Map<?, ?> m) { // JsonConverter with schemas.enable=false
                json = MAPPER.valueToTree(m);
            } else {
                throw new DataException("unsupported value type " + value.getClass().getName()
                    + ": use org.apache.kafka.connect.storage.StringConverter as value.converter");
            }
        } catch (JsonProcessingException e) {
            throw new DataException("the value is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException | IllegalArgumentException e) {
            throw new DataException("the value is not valid JSON: " + e.getMessage(), e);
        }
        if (json == null || !json.isObject()) {
            throw new DataException("the value is not a JSON object");
        }
        String id;
        if (idField.isEmpty()) {
            id = record.topic() + "+" + record.kafkaPartition() + "+" + record.kafkaOffset();
        } else {
            JsonNode field = json.get(idField);
            if (field == null || !(field.isTextual() || field.isIntegralNumber()) || field.asText().isEmpty()) {
                throw new DataException("the value has no string or integer field \"" + idField + "\" for the document id");
            }
            id = field.asText();
            if (id.getBytes(StandardCharsets.UTF_8).length > MAX_ID_BYTES) {
                throw new DataException("the document id in \"" + idField + "\" is longer than " + MAX_ID_BYTES + " bytes");
            }
        }
        String target = index.isEmpty() ? record.topic() : index;
        if (!dateField.isEmpty()) {
            target += "-" + indexTime(json);
        }
        try {
            return new Doc(position, target, id, MAPPER.writeValueAsString(json));
        } catch (JsonProcessingException e) {
            throw new DataException("cannot serialize the value: " + e.getMessage(), e);
        }
    }

    /**
     * indexTime returns the document's time, from index.date.field, formatted
     * for the name of its index: the same for every delivery of a record,
     * whenever it happens.
     */
    private String indexTime(JsonNode json) {
        JsonNode field = json.get(dateField);
        if (field == null || !field.isTextual()) {
            throw new DataException("the value has no string field \"" + dateField + "\" for the time of its index");
        }
        try {
            return dateFormat.format(OffsetDateTime.parse(field.asText(), DateTimeFormatter.ISO_OFFSET_DATE_TIME));
        } catch (DateTimeParseException e) {
            throw new DataException("the field \"" + dateField + "\" is not an ISO 8601 time with an offset: " + field.asText(), e);
        } catch (DateTimeException e) {
            throw new DataException("the field \"" + dateField + "\" cannot name an index: " + e.getMessage(), e);
        }
    }

    /**
     * bulk indexes docs and records in refused, by position, the documents
     * OpenSearch refused for good. It returns why the request or some
     * documents failed transiently, else null.
     */
    private String bulk(List<Doc> docs, DataException[] refused) {
        StringBuilder body = new StringBuilder();
        for (Doc doc : docs) {
            ObjectNode action = MAPPER.createObjectNode();
            action.putObject("index").put("_index", doc.index()).put("_id", doc.id());
            body.append(action).append('\n').append(doc.source()).append('\n');
        }
        HttpResponse<String> response = post("/_bulk", body.toString());
        if (response == null) {
            return "no OpenSearch URL answered";
        }
        int status = response.statusCode();
        if (status == 429 || status >= 500) {
            return "_bulk answered " + status + ": " + abbreviate(response.body());
        }
        if (status != 200) {
            throw new ConnectException("_bulk answered " + status + ": " + abbreviate(response.body()));
        }
        JsonNode result;
        try {
            result = MAPPER.readTree(response.body());
        } catch (IOException e) {
            throw new ConnectException("cannot read the _bulk response: " + e.getMessage(), e);
        }
        if (!result.path("errors").asBoolean(false)) {
            return null;
        }
        JsonNode items = result.path("items");
        if (!items.isArray() || items.size() != docs.size()) {
            throw new ConnectException("the _bulk response has " + items.size() + " items for " + docs.size() + " documents");
        }
        String transient_ = null;
        for (int i = 0; i < docs.size(); i++) {
            JsonNode item = items.get(i).path("index");
            int itemStatus = item.path("status").asInt();
            if (itemStatus >= 200 && itemStatus < 300) {
                continue;
            }
            JsonNode error = item.path("error");
            String message = "OpenSearch refused document " + docs.get(i).id() + " (status " + itemStatus + "): "
                + error.path("type").asText() + ": " + error.path("reason").asText()
                + (error.has("caused_by") ? " (" + error.path("caused_by").path("reason").asText() + ")" : "");
            if (itemStatus == 400) { // the document itself: not JSON the index takes, a mapping conflict
                refused[docs.get(i).position()] = new DataException(message);
            } else if (itemStatus == 429 || itemStatus >= 500 || "cluster_block_exception".equals(error.path("type").asText())) {
                transient_ = message; // overload, a node down, a read-only index (disk full)
            } else { // the cluster refuses this connector (401, 403, 404): fail the task, visibly
                throw new ConnectException(message);
            }
        }
        return transient_;
    }

    /**
     * post sends body to path on the first URL that answers; null if none
     * does. A URL whose certificate is not trusted fails the task (a
     * configuration problem: the truststore, or the server's certificate),
     * unless another URL answers.
     */
    private HttpResponse<String> post(String path, String body) {
        SSLException untrusted = null;
        for (int n = 0; n < urls.size(); n++) {
            int i = (current + n) % urls.size();
            HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(urls.get(i) + path))
                .timeout(requestTimeout)
                .header("Content-Type", "application/x-ndjson")
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
            if (authorization != null) {
                request.header("Authorization", authorization);
            }
            try {
                HttpResponse<String> response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
                current = i;
                return response;
            } catch (SSLException e) {
                LOG.warn("POST {}{} failed: {}", urls.get(i), path, e.toString());
                if (certificateRefused(e)) {
                    untrusted = e;
                }
            } catch (IOException e) {
                LOG.warn("POST {}{} failed: {}", urls.get(i), path, e.toString());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ConnectException("interrupted", e);
            }
        }
        if (untrusted != null) {
            throw new ConnectException("TLS with " + String.join(", ", urls) + " failed: " + untrusted.getMessage()
                + " (is " + OpenSearchSinkConnector.TRUSTSTORE_LOCATION + " the CA that signed the server's certificate?)", untrusted);
        }
        return null;
    }

    /** certificateRefused reports whether e says the server's certificate was not trusted. */
    private static boolean certificateRefused(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof java.security.cert.CertificateException) {
                return true;
            }
        }
        return false;
    }

    private RetriableException retry(String message) {
        LOG.warn("{}; the batch is retried in {} ms", message, retryBackoffMs);
        context.timeout(retryBackoffMs);
        return new RetriableException(message);
    }

    /**
     * reject hands a record that cannot be indexed to Connect's error
     * reporter (dead letter queue, error log); without one, the task fails.
     */
    private void reject(SinkRecord record, DataException e) {
        if (reporter == null) {
            throw new ConnectException("cannot index the record at " + where(record) + " and no error reporter is "
                + "configured (errors.tolerance=all with errors.deadletterqueue.topic.name): " + e.getMessage(), e);
        }
        LOG.warn("cannot index the record at {}, reporting it: {}", where(record), e.getMessage());
        reporter.report(record, e);
    }

    private static String where(SinkRecord record) {
        return record.topic() + "-" + record.kafkaPartition() + "@" + record.kafkaOffset();
    }

    private static String abbreviate(String s) {
        return s.length() > 1000 ? s.substring(0, 1000) + "..." : s;
    }

    @Override
    public void stop() {
    }
}
