/*
 * The CA certificates Code Bank's OpenSearch sink verifies https:// URLs
 * against: see OpenSearchSinkConnector (opensearch.ssl.truststore.*).
 */
package codebank.connect;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Collection;

import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.types.Password;

final class Trust {
    private Trust() {
    }

    /**
     * sslContext returns the TLS context that trusts the configured CA
     * certificates, or null to use the JVM's default (no truststore set).
     */
    static SSLContext sslContext(AbstractConfig config) {
        String location = config.getString(OpenSearchSinkConnector.TRUSTSTORE_LOCATION);
        if (location.isEmpty()) {
            return null;
        }
        String type = config.getString(OpenSearchSinkConnector.TRUSTSTORE_TYPE);
        Password password = config.getPassword(OpenSearchSinkConnector.TRUSTSTORE_PASSWORD);
        try {
            KeyStore store;
            if (type.equals("PEM")) {
                store = KeyStore.getInstance(KeyStore.getDefaultType());
                store.load(null, null);
                Collection<? extends Certificate> certs;
                try (InputStream in = Files.newInputStream(Path.of(location))) {
                    certs = CertificateFactory.getInstance("X.509").generateCertificates(in);
                }
                if (certs.isEmpty()) {
                    throw new ConfigException(OpenSearchSinkConnector.TRUSTSTORE_LOCATION, location, "holds no PEM certificate");
                }
                int i = 0;
                for (Certificate cert : certs) {
                    store.setCertificateEntry("ca-" + i++, cert);
                }
            } else {
                store = KeyStore.getInstance(type);
                try (InputStream in = Files.newInputStream(Path.of(location))) {
                    store.load(in, password == null || password.value().isEmpty() ? null : password.value().toCharArray());
                }
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(store);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, tmf.getTrustManagers(), null);
            return context;
        } catch (IOException | GeneralSecurityException e) {
            throw new ConfigException(OpenSearchSinkConnector.TRUSTSTORE_LOCATION, location,
                "cannot read it as a " + type + " truststore: " + e.getMessage());
        }
    }
}
