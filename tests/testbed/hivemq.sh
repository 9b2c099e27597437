# HiveMQ Community Edition, embedded (tests/testbed/hivemq, built by install-hivemq.sh): the test
# bed's second MQTT broker. Sourced after lib.sh and services.sh; start is idempotent.

HIVEMQ_HOME=$CACHE_DIR/hivemq-$HIVEMQ_VERSION
HIVEMQ_PASSWORD_FILE=$STATE_DIR/hivemq/keystore-password

# HiveMQ reads keys only from a Java keystore: the test bed's server certificate (with its CA)
# as PKCS12, which Java opens as the JKS HiveMQ asks for. Made again when the PEM files or the
# password are newer. The password (random, made once per state directory) is read from its
# file, never put on a command line.
hivemq_keystore() {
  local keystore=$STATE_DIR/hivemq/server.p12
  random_secret "$HIVEMQ_PASSWORD_FILE" >/dev/null
  if [ ! -s "$keystore" ] || [ "$TLS_DIR/server.crt" -nt "$keystore" ] || [ "$HIVEMQ_PASSWORD_FILE" -nt "$keystore" ]; then
    openssl pkcs12 -export -name server -in "$TLS_DIR/server.crt" -inkey "$TLS_DIR/server.key" \
      -certfile "$TLS_DIR/ca.crt" -passout "file:$HIVEMQ_PASSWORD_FILE" -out "$keystore.tmp" \
      || die "making HiveMQ's keystore failed"
    mv "$keystore.tmp" "$keystore"
  fi
}

# The build a running HiveMQ was started from (install-hivemq.sh's sum): one started from an
# older build is restarted, so a changed test-bed main takes effect.
hivemq_build() { cat "$HIVEMQ_HOME/.complete" 2>/dev/null || true; }

hivemq_ready() { port_open "$HIVEMQ_PORT" && port_open "$HIVEMQ_TLS_PORT"; }

start_hivemq() {
  if is_running hivemq testbed.HiveMqMain; then
    if [ "$(cat "$STATE_DIR/hivemq/running-build" 2>/dev/null)" = "$(hivemq_build)" ]; then
      wait_for hivemq 90 hivemq_ready
      return 0
    fi
    log "HiveMQ runs an older build of tests/testbed/hivemq; restarting it"
    stop_hivemq
  fi
  local port
  for port in "$HIVEMQ_PORT" "$HIVEMQ_TLS_PORT"; do
    port_open "$port" && die "port $port is taken by another program; set MKB_HIVEMQ_PORT / MKB_HIVEMQ_TLS_PORT"
  done
  [ -f "$HIVEMQ_HOME/libs/testbed-hivemq-1.jar" ] || die "HiveMQ is not built; run tests/testbed/install-hivemq.sh"
  local dir=$STATE_DIR/hivemq
  # Embedded HiveMQ calls itself a "Development Snapshot" and so skips the migrations of its
  # persistence between versions: data written by another version is dropped, not read.
  if [ -d "$dir/data" ] && [ "$(cat "$dir/data/.testbed-version" 2>/dev/null)" != "$HIVEMQ_VERSION" ]; then
    log "dropping HiveMQ data of another version ($dir/data)"
    rm -rf "$dir/data"
  fi
  mkdir -p "$dir/conf" "$dir/data" "$dir/extensions"
  printf '%s\n' "$HIVEMQ_VERSION" >"$dir/data/.testbed-version"
  make_tls_material
  hivemq_keystore
  # A second plain listener on the pod network's gateway when it is there, as Mosquitto has.
  local pod_listener=""
  if pod_network_up; then
    pod_listener="<tcp-listener><port>$HIVEMQ_PORT</port><bind-address>$POD_GATEWAY</bind-address><name>pods</name></tcp-listener>"
  fi
  # As Mosquitto: queue instead of dropping (HiveMQ's default queue is 1,000 messages per
  # client) and keep sessions and queues on disk across restarts; the MQTT limits stay
  # HiveMQ's defaults, which the bridge must cope with. Anonymous usage statistics are off:
  # they are HiveMQ CE's only call home (https://analytics.hivemq.com), and nothing here may
  # dial out. CE has no update check.
  # It holds the keystore's password: readable by its owner only.
  (umask 077 && cat >"$dir/conf/config.xml") <<CONF
<?xml version="1.0"?>
<hivemq>
  <listeners>
    <tcp-listener>
      <port>$HIVEMQ_PORT</port>
      <bind-address>127.0.0.1</bind-address>
      <name>plain</name>
    </tcp-listener>
    $pod_listener
    <tls-tcp-listener>
      <port>$HIVEMQ_TLS_PORT</port>
      <bind-address>127.0.0.1</bind-address>
      <name>tls</name>
      <tls>
        <keystore>
          <path>$dir/server.p12</path>
          <password>$(cat "$HIVEMQ_PASSWORD_FILE")</password>
          <private-key-password>$(cat "$HIVEMQ_PASSWORD_FILE")</private-key-password>
        </keystore>
        <client-authentication-mode>NONE</client-authentication-mode>
      </tls>
    </tls-tcp-listener>
  </listeners>
  <mqtt>
    <queued-messages>
      <max-queue-size>1000000</max-queue-size>
      <strategy>discard</strategy>
    </queued-messages>
  </mqtt>
  <persistence>
    <mode>file</mode>
  </persistence>
  <anonymous-usage-statistics>
    <enabled>false</enabled>
  </anonymous-usage-statistics>
</hivemq>
CONF
  # Logging to stdout (start_process's log): HiveMQ's own log files would go to its home.
  cat >"$dir/conf/logback.xml" <<CONF
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{yyyy-MM-dd'T'HH:mm:ss.SSS} %-5level %msg%n%ex</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="jetbrains.exodus" level="WARN"/>
  <logger name="oshi" level="ERROR"/>
  <logger name="com.google.common.util.concurrent.Futures.CombinedFuture" level="OFF"/>
</configuration>
CONF
  # A small heap and the serial collector: the machine runs four other JVMs on two cores.
  # RocksDB and JNA unpack their native libraries into the temporary directory: the state
  # directory's, so a killed broker leaves nothing behind in /tmp.
  mkdir -p "$dir/tmp"
  hivemq_build >"$dir/running-build"
  start_process hivemq java -Xms64m -Xmx384m -XX:+UseSerialGC -Djava.awt.headless=true \
    -Djava.io.tmpdir="$dir/tmp" -Djna.tmpdir="$dir/tmp" \
    -cp "$HIVEMQ_HOME/libs/*" testbed.HiveMqMain "$dir/conf" "$dir/data" "$dir/extensions"
  wait_for hivemq 90 hivemq_ready
}

# TERM makes the main stop HiveMQ, which writes sessions and queues out first.
stop_hivemq() { stop_process hivemq testbed.HiveMqMain 30; }
