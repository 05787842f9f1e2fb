# Thin wrappers over the deno tasks in deno.json, for those who reach for make.
.PHONY: all gen gen-check build check test test-unit demo clean

all: check test

gen:
	deno task gen

gen-check:
	deno task gen:check

build:
	deno task build

check:
	deno task check

test:
	deno task test

test-unit:
	deno task test:unit

demo:
	deno task demo

clean:
	rm -rf manager/bin worker/bin schedctl/bin
