// The main class of the local OpenSearch node started by package localsearch.
//
// OpenSearch's own launcher loads its modules from a distribution's modules
// directory and installs a security manager. This node is started from the
// Maven Central jars instead: it passes the modules it needs as classpath
// plugins to the protected Node constructor, which is what OpenSearch's test
// framework does too. Settings come from PATH_HOME/config/opensearch.yml,
// written by localsearch. SIGTERM closes the node in an orderly way.
package codebank.localsearch;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public final class LocalSearchNode extends Node {
    private static final List<Class<? extends Plugin>> MODULES = List.of(
        org.opensearch.transport.Netty4Plugin.class,              // HTTP and transport
        org.opensearch.analysis.common.CommonAnalysisPlugin.class, // standard analyzers and filters
        org.opensearch.index.mapper.MapperExtrasPlugin.class,      // scaled_float, rank_feature, ...
        org.opensearch.index.reindex.ReindexPlugin.class);         // _reindex, _update_by_query, _delete_by_query

    private LocalSearchNode(Settings settings, Path configDir) {
        super(InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), configDir, () -> "localsearch"),
            MODULES, true);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: LocalSearchNode PATH_HOME");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Path configDir = home.resolve("config");
        Settings settings = Settings.builder().put("path.home", home.toString()).build();
        LogConfigurator.configureWithoutConfig(
            Settings.builder().put(settings).loadFromPath(configDir.resolve("opensearch.yml")).build());

        Node node;
        try {
            node = new LocalSearchNode(settings, configDir);
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
            return;
        }
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(20, TimeUnit.SECONDS)) {
                    System.err.println("localsearch: node did not close within 20s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "localsearch-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
        System.out.println("localsearch: node started");
        closed.await();
    }
}
