// Command cairn runs and talks to a Cairn node: community monitoring data
// kept by a network of people who use drugs on its own machine.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/inpud/cairn/cli"
)

func main() {
	if err := cli.Run(context.Background(), os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}
