package testbed;

import com.hivemq.embedded.EmbeddedExtension;
import com.hivemq.embedded.EmbeddedHiveMQ;
import com.hivemq.extension.sdk.api.ExtensionMain;
import com.hivemq.extension.sdk.api.auth.SimpleAuthenticator;
import com.hivemq.extension.sdk.api.interceptor.publish.PublishInboundInterceptor;
import com.hivemq.extension.sdk.api.packets.publish.AckReasonCode;
import com.hivemq.extension.sdk.api.parameter.ExtensionStartInput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStartOutput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStopInput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStopOutput;
import com.hivemq.extension.sdk.api.services.Services;

import java.nio.file.Files;
import java.util.Arrays;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The test bed's HiveMQ Community Edition: HiveMQ embedded, with the configuration, data and
 * extensions folders given as arguments (or the system properties testbed.hivemq.config,
 * .data and .extensions), an embedded extension that lets every client in, and a clean stop
 * on SIGTERM.
 *
 * <pre>java -cp 'libs/*' testbed.HiveMqMain CONFIG_DIR DATA_DIR EXTENSIONS_DIR</pre>
 */
public final class HiveMqMain {

    /** How long a stop may take; the test bed's stop_hivemq waits 30 s before it kills. */
    private static final long STOP_TIMEOUT_SECONDS = 25;

    private HiveMqMain() {
    }

    public static void main(final String[] args) throws Exception {
        final Path config = folder(args, 0, "testbed.hivemq.config");
        final Path data = folder(args, 1, "testbed.hivemq.data");
        final Path extensions = folder(args, 2, "testbed.hivemq.extensions");
        Files.createDirectories(data);
        Files.createDirectories(extensions);

        final EmbeddedHiveMQ hivemq = EmbeddedHiveMQ.builder()
                .withConfigurationFolder(config)
                .withDataFolder(data)
                .withExtensionsFolder(extensions)
                .withEmbeddedExtension(allowAllExtension())
                .build();

        // SIGTERM (and System.exit) run the shutdown hooks: stop HiveMQ there, so sessions and
        // queues are written out and the data folder is closed before the JVM goes.
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                hivemq.stop().get(STOP_TIMEOUT_SECONDS, TimeUnit.SECONDS);
            } catch (final Exception e) {
                System.err.println("testbed: stopping HiveMQ failed: " + e);
            } finally {
                stopped.countDown();
            }
        }, "testbed-hivemq-stop"));

        try {
            hivemq.start().join();
        } catch (final Exception e) {
            System.err.println("testbed: HiveMQ did not start: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("testbed: HiveMQ started");
        stopped.await();
    }

    /** The argument at index, else the system property; must name a folder (made if missing). */
    private static Path folder(final String[] args, final int index, final String property) throws Exception {
        final String value = index < args.length ? args[index] : System.getProperty(property);
        if (value == null || value.isEmpty()) {
            System.err.println("usage: HiveMqMain CONFIG_DIR DATA_DIR EXTENSIONS_DIR"
                    + " (or -D" + property + "=DIR)");
            System.exit(2);
        }
        return Path.of(value).toAbsolutePath();
    }

    /** A topic level that makes HiveMQ refuse the PUBLISH, as an authorisation extension would. */
    private static final String REFUSED_LEVEL = "refused";

    /**
     * Every client may connect, with any client id and without credentials, and may publish
     * and subscribe to anything: the tests need an open broker, as Mosquitto's
     * allow_anonymous. (Embedded HiveMQ allows unauthenticated clients already; saying it
     * here keeps the test bed independent of that default.) The one exception, for the tests of
     * MQTT 5 reason codes: a PUBLISH to a topic with a level "refused" is answered with 0x87
     * (not authorized) and delivered to nobody, as an ACL of Mosquitto does.
     */
    private static EmbeddedExtension allowAllExtension() {
        final SimpleAuthenticator allowAll = (input, output) -> output.authenticateSuccessfully();
        return EmbeddedExtension.builder()
                .withId("testbed-allow-all")
                .withName("Test bed: allow all clients, refuse topics with a level 'refused'")
                .withVersion("1")
                .withAuthor("mqtt-kafka-bridge test bed")
                .withPriority(0)
                .withStartPriority(1000)
                .withExtensionMain(new ExtensionMain() {
                    @Override
                    public void extensionStart(final ExtensionStartInput in, final ExtensionStartOutput out) {
                        Services.securityRegistry().setAuthenticatorProvider(providerInput -> allowAll);
                        final PublishInboundInterceptor refuse = (publishIn, publishOut) -> {
                            final String topic = publishIn.getPublishPacket().getTopic();
                            if (Arrays.asList(topic.split("/", -1)).contains(REFUSED_LEVEL)) {
                                publishOut.preventPublishDelivery(AckReasonCode.NOT_AUTHORIZED,
                                        "refused by the test bed");
                            }
                        };
                        Services.initializerRegistry().setClientInitializer(
                                (initIn, client) -> client.addPublishInboundInterceptor(refuse));
                    }

                    @Override
                    public void extensionStop(final ExtensionStopInput in, final ExtensionStopOutput out) {
                    }
                })
                .build();
    }
}
