# Rampart. The two commands a new machine needs: `make dev` and `make test`.

GO              ?= go
STATICCHECK     := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The PostgreSQL tests run against this database; `make test` never skips them.
RAMPART_TEST_POSTGRES ?= postgres://$(shell id -un)@127.0.0.1:5432/test?sslmode=disable
export RAMPART_TEST_POSTGRES
FUZZTIME        ?= 4s
SOAK_FUZZTIME   ?= 3m

.PHONY: dev build lint test test-go fuzz bench soak clean

## dev: run the security service on embedded defaults (throwaway tenant, token and TLS)
dev:
	$(GO) run ./cmd/rampart server -dev

# The example apps (examples/, docs/EXAMPLES.md), each laid out in bin/examples/NAME as a package
# directory for `rampart image-package pack-application`: static, since a sandbox has no libc.
EXAMPLES        := blink telemetry mutual-auth

# The agent as a device ships it, bin/device/rampart-agent: without cgo, so without the tpm-sim
# root of trust (a development backend; tpm, swtpm: and software remain) and the libcrypto it
# links, and stripped. It is what `make bench` measures for idle memory (docs/PERFORMANCE.md).
AGENT_DEVICE_FLAGS := -trimpath -ldflags='-s -w'

## build: build the binaries into bin/, the device agent into bin/device/, and the example apps into bin/examples/
build:
	$(GO) build -o bin/ ./cmd/...
	CGO_ENABLED=0 $(GO) build $(AGENT_DEVICE_FLAGS) -o bin/device/rampart-agent ./cmd/rampart-agent
	@for e in $(EXAMPLES); do \
		mkdir -p bin/examples/$$e/bin && \
		CGO_ENABLED=0 $(GO) build -o bin/examples/$$e/bin/$$e ./examples/$$e && \
		cp examples/$$e/app_manifest.json bin/examples/$$e/ || exit 1; \
	done

## lint: gofmt, go vet and staticcheck
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## test: lint, every test on SQLite and PostgreSQL, and a short run of every fuzz target
test: lint test-go fuzz

test-go:
	$(GO) test -count=1 -timeout 20m ./...

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

## bench: throughput figures beside ceilings measured in the same run
bench:
	RAMPART_BENCH=1 $(GO) test -count=1 -timeout 30m -run TestBenchReport -v ./internal/bench | grep -v '^=== RUN\|^--- PASS\|^PASS'
	@echo
	@echo "package verification (VerifyPayload) beside raw SHA-256 of the same 16 MiB, and one signature check (OpenVerify):"
	@$(GO) test -count=1 -run '^$$' -bench 'VerifyPayload|SHA256|OpenVerify' -benchtime 20x ./imagepkg | grep '^Benchmark'
	@echo
	@echo "image download (Fetch: resume-capable, verified, synced) beside http.FileServer over the same TLS loopback:"
	@$(GO) test -count=1 -run '^$$' -bench 'Download' -benchtime 10x ./internal/download | grep '^Benchmark'
	@echo
	@echo "certificate issue (the CA's signature path) beside x509.CreateCertificate and a bare P-256 signature:"
	@$(GO) test -count=1 -run '^$$' -bench 'Issue$$|CreateCertificate|SignP256' ./internal/ca | grep '^Benchmark'

## soak: long campaigns: the OS-update power-cut campaign (200+ kill points), then fuzzing for SOAK_FUZZTIME per target
soak:
	RAMPART_SOAK=1 $(GO) test -count=1 -v -timeout 30m -run TestPowerCut ./internal/osupdate | grep -v '^=== RUN'
	./scripts/fuzz.sh $(SOAK_FUZZTIME)

clean:
	rm -rf bin
