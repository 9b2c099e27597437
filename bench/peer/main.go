// Command redpanda-connect is the benchmark's peer: Redpanda Connect's own CLI with the
// components the benchmark uses (mqtt input and output, kafka_franz input and output, and the
// pure processors), built from the published module by bench/build-peer.sh.
package main

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/connect/v4/public/components/kafka"
	_ "github.com/redpanda-data/connect/v4/public/components/mqtt"
	_ "github.com/redpanda-data/connect/v4/public/components/pure"
)

// Version is set at build time to the Redpanda Connect release in go.mod.
var Version = "unknown"

func main() {
	service.RunCLI(context.Background(), service.CLIOptSetVersion(Version, ""), service.CLIOptSetBinaryName("redpanda-connect"))
}
