# Cairn: `make run` starts a node on ./data; `make test` runs every test.
GO      ?= go
DATA    ?= ./data
API     ?= 127.0.0.1:7410
FUZZN   ?= 20000x
# Targets that go through a real stream, an HTTP API, a file or a whole
# registry snapshot per input.
FUZZNIO ?= 2000x

.PHONY: build run test test-short bench fuzz fuzz-ci lint clean

build:
	$(GO) build -o bin/cairn .

# Starts a node in the foreground on ./data with its API on 127.0.0.1.
# The first run initialises ./data for a demo network; Ctrl-C stops it.
run: build
	./bin/cairn --data-dir $(DATA) start --api $(API) --network demo --name "Demo network" --level local

# All tests, with the race detector (the node, API, store and CLI run
# goroutines), then a short run of every fuzz target.
test: lint
	$(GO) test -race -count=1 -timeout 40m ./...
	$(MAKE) fuzz-ci

test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks; docs/BENCHMARKS.md records the results with machine and date.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=3s -timeout=60m ./node/store/
	$(GO) test -run='^$$' -bench=NodeStart1M -benchtime=1x -timeout=60m .
	$(GO) test -run='^$$' -bench=CommitLatency -benchtime=300x ./node/federation/
	$(GO) test -run='^$$' -bench=Join500 -benchtime=1x ./node/federation/
	$(GO) test -run='^$$' -bench=IdleCluster ./node/raftnet/
	$(GO) test -run='^$$' -bench=Federation100 -benchtime=3x -timeout=30m ./sync/
# Sync between two node processes on loopback, beside a plain TCP copy and
# Syncthing (Debian's package, installed here if missing; ../shared/bench).
	command -v syncthing >/dev/null || apt-get install -y syncthing || { apt-get update && apt-get install -y syncthing; }
	$(GO) test -run='^$$' -bench='^BenchmarkSync' -benchtime=1x -timeout=30m .

# Each fuzz target for a while (FUZZTIME=5m make fuzz). Crashers land in
# testdata/fuzz/ and become regression seeds.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./model/templates
	$(GO) test -run='^$$' -fuzz='^FuzzOpen$$' -fuzztime=$(FUZZTIME) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzParseAudience$$' -fuzztime=$(FUZZTIME) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzPayloadDecodeMatches$$' -fuzztime=$(FUZZTIME) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzAuditDecodeMatches$$' -fuzztime=$(FUZZTIME) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzApply$$' -fuzztime=$(FUZZTIME) ./node/registry
	$(GO) test -run='^$$' -fuzz='^FuzzReadFrame$$' -fuzztime=$(FUZZTIME) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRequest$$' -fuzztime=$(FUZZTIME) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeBatch$$' -fuzztime=$(FUZZTIME) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzPullAnswer$$' -fuzztime=$(FUZZTIME) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzNotifyFrame$$' -fuzztime=$(FUZZTIME) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzReceiptFrame$$' -fuzztime=$(FUZZTIME) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzReceiptAck$$' -fuzztime=$(FUZZTIME) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzRestore$$' -fuzztime=$(FUZZTIME) ./node/registry
	$(GO) test -run='^$$' -fuzz='^FuzzImport$$' -fuzztime=$(FUZZTIME) ./node/api
	$(GO) test -run='^$$' -fuzz='^FuzzConfigFile$$' -fuzztime=$(FUZZTIME) ./cli

# CI runs each target for a fixed count (a duration can flake on Go 1.26,
# golang/go#75804).
fuzz-ci:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZN) ./model/templates
	$(GO) test -run='^$$' -fuzz='^FuzzOpen$$' -fuzztime=$(FUZZN) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzParseAudience$$' -fuzztime=$(FUZZN) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzPayloadDecodeMatches$$' -fuzztime=$(FUZZN) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzAuditDecodeMatches$$' -fuzztime=$(FUZZN) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzApply$$' -fuzztime=$(FUZZN) ./node/registry
	$(GO) test -run='^$$' -fuzz='^FuzzReadFrame$$' -fuzztime=$(FUZZN) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRequest$$' -fuzztime=$(FUZZN) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeBatch$$' -fuzztime=$(FUZZN) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzPullAnswer$$' -fuzztime=$(FUZZNIO) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzNotifyFrame$$' -fuzztime=$(FUZZNIO) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzReceiptFrame$$' -fuzztime=$(FUZZNIO) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzReceiptAck$$' -fuzztime=$(FUZZNIO) ./sync
	$(GO) test -run='^$$' -fuzz='^FuzzRestore$$' -fuzztime=$(FUZZNIO) ./node/registry
	$(GO) test -run='^$$' -fuzz='^FuzzImport$$' -fuzztime=$(FUZZNIO) ./node/api
	$(GO) test -run='^$$' -fuzz='^FuzzConfigFile$$' -fuzztime=$(FUZZNIO) ./cli

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
