#!/usr/bin/env bash
# Resolves Apache Kafka (broker and tools) and a log4j2 backend from Maven Central into
# $CACHE_DIR/kafka-$KAFKA_VERSION/libs. Skipped when resolved already from the same list.
. "$(dirname "$0")/lib.sh"
command -v mvn >/dev/null || die "Maven (mvn) is required to resolve Kafka from Maven Central"
command -v java >/dev/null || die "Java 17+ is required to run Kafka"
dir=$CACHE_DIR/kafka-$KAFKA_VERSION
mkdir -p "$dir"
cat >"$dir/pom.xml.wanted" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>testbed.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
if [ -f "$dir/.complete" ] && cmp -s "$dir/pom.xml.wanted" "$dir/pom.xml"; then
  rm -f "$dir/pom.xml.wanted"
  exit 0
fi
log "resolving Apache Kafka $KAFKA_VERSION from Maven Central"
rm -f "$dir/.complete"
mv "$dir/pom.xml.wanted" "$dir/pom.xml"
rm -rf "$dir/libs"
mvn -B -q -f "$dir/pom.xml" -Dmaven.repo.local="$CACHE_DIR/m2" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/libs"
touch "$dir/.complete"
