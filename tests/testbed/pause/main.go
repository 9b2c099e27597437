// Command pause is the test-bed node's pod sandbox: it holds a pod's namespaces until it is
// told to stop. Built locally so the node needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
