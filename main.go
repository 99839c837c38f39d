// Command cairn runs and talks to a Cairn node: community monitoring data
// kept by a network of people who use drugs on its own machine.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"

	"github.com/inpud/cairn/cli"
)

func main() {
	stop := profile(os.Getenv("CAIRN_PROFILE_DIR"))
	err := cli.Run(context.Background(), os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}

// profile is for measuring the node, not for users (docs/BENCHMARKS.md):
// when CAIRN_PROFILE_DIR names a directory, the process writes a CPU
// profile (cpu-<pid>.pprof) from start to exit and an allocation profile
// (allocs-<pid>.pprof) at exit. It is read from the environment only, so
// it is in no config file, flag or help text.
func profile(dir string) (stop func()) {
	if dir == "" {
		return func() {}
	}
	pid := strconv.Itoa(os.Getpid())
	cpu, err := os.Create(filepath.Join(dir, "cpu-"+pid+".pprof"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn: CAIRN_PROFILE_DIR:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		fmt.Fprintln(os.Stderr, "cairn: CAIRN_PROFILE_DIR:", err)
		cpu.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		f, err := os.Create(filepath.Join(dir, "allocs-"+pid+".pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "cairn: CAIRN_PROFILE_DIR:", err)
			return
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			fmt.Fprintln(os.Stderr, "cairn: CAIRN_PROFILE_DIR:", err)
		}
	}
}
