#!/usr/bin/env bash
# Builds the test bed's HiveMQ Community Edition (embedded, tests/testbed/hivemq) with Maven into
# $CACHE_DIR/hivemq-$HIVEMQ_VERSION: libs/ holds HiveMQ, its dependencies and the built main.
# Skipped when built already from the same sources (a checksum of the pom and the Java files).
. "$(dirname "$0")/lib.sh"
command -v mvn >/dev/null || die "Maven (mvn) is required to build HiveMQ's test-bed main"
command -v java >/dev/null || die "Java 17+ is required to run HiveMQ"
src=$TESTBED_DIR/hivemq
dir=$CACHE_DIR/hivemq-$HIVEMQ_VERSION
# The version is part of the sum too: the pom takes it from versions.env.
sum=$( (
  cd "$src"
  echo "HIVEMQ_VERSION=$HIVEMQ_VERSION"
  find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum
) | sha256sum | cut -d' ' -f1)
if [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$sum" ]; then
  exit 0
fi
log "building HiveMQ Community Edition $HIVEMQ_VERSION (embedded) from Maven Central"
rm -rf "$dir/build" "$dir/libs.new"
mkdir -p "$dir/build"
# Built from a copy, so Maven's target/ stays out of the checkout; into libs.new, swapped in at
# the end, so a HiveMQ running from libs/ is not pulled from under (start_hivemq restarts it
# on the new build).
cp -r "$src/pom.xml" "$src/src" "$dir/build/"
mvn -B -q -f "$dir/build/pom.xml" -Dmaven.repo.local="$CACHE_DIR/m2" -Dhivemq.version="$HIVEMQ_VERSION" \
  package dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/libs.new"
cp "$dir/build/target/testbed-hivemq-1.jar" "$dir/libs.new/"
rm -rf "$dir/build" "$dir/libs.old"
[ ! -d "$dir/libs" ] || mv "$dir/libs" "$dir/libs.old"
mv "$dir/libs.new" "$dir/libs"
printf '%s\n' "$sum" >"$dir/.complete"
