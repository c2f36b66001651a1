# crest: checkpoint/restore for Linux process trees.
# `make` builds build/crest; `make check` installs what is missing, builds and runs every test;
# `make demo` shows a process checkpointed, killed and restored.

ARCH      ?= x86_64
PREFIX    ?= /usr/local
BUILD     := build
CC        ?= gcc
VERSION   := $(shell cat VERSION 2>/dev/null || echo 0.1.0)

WARN      := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 $(WARN) -D_GNU_SOURCE -DCREST_VERSION='"$(VERSION)"'
CPPFLAGS  += -Isrc -Isrc/arch/$(ARCH) -Iinclude -I$(BUILD)/proto
LDLIBS    := -lprotobuf-c -lzstd

PROTOS    := $(wildcard proto/*.proto)
PROTO_C   := $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTOS))
PROTO_H   := $(PROTO_C:.c=.h)

# Everything under src/ except the freestanding restorer goes into crest.
CREST_SRC := $(filter-out src/restorer/% src/arch/$(ARCH)/restorer/%, \
               $(wildcard src/*/*.c src/arch/$(ARCH)/*.c))
CREST_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(CREST_SRC)) $(PROTO_C:.c=.o) $(BUILD)/restorer/blob.o

# The restorer: no libc, position independent, linked flat and embedded into crest.
RST_SRC   := $(wildcard src/restorer/*.c) $(wildcard src/arch/$(ARCH)/restorer/*.c)
RST_ASM   := $(wildcard src/arch/$(ARCH)/restorer/*.S)
RST_OBJ   := $(patsubst %,$(BUILD)/rst/%.o,$(RST_ASM) $(RST_SRC))
RST_CFLAGS := -std=gnu11 $(WARN) -O2 -g -fpie -ffreestanding -fno-builtin -nostdlib \
              -fno-stack-protector -fno-asynchronous-unwind-tables -fno-jump-tables \
              -fno-exceptions -mgeneral-regs-only -fvisibility=hidden -Isrc -Isrc/arch/$(ARCH)

# Unit tests (tests/unit/test_*.c) link against every crest object but main.
UNITS     := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
LIB_OBJ   := $(filter-out $(BUILD)/src/cli/main.o,$(CREST_OBJ))

CASES     := $(patsubst tests/cases/%.c,$(BUILD)/tests/cases/%,$(wildcard tests/cases/*.c))
BENCHES   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c)) $(BUILD)/bench/crestbench

.PHONY: all deps test-deps check demo bench bench-progs install clean cases units
all: $(BUILD)/crest cases units bench-progs

deps:
	@scripts/deps.sh build
test-deps:
	@scripts/deps.sh test

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	protoc-c --c_out=$(BUILD)/proto -Iproto $<

$(BUILD)/proto/%.pb-c.o: $(BUILD)/proto/%.pb-c.c $(PROTO_H)
	$(CC) $(CPPFLAGS) -std=gnu11 -O2 -g -c -o $@ $<

$(BUILD)/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/rst/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(RST_CFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/rst/%.S.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(RST_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/restorer/restorer.elf: $(RST_OBJ) src/arch/$(ARCH)/restorer/restorer.lds
	@mkdir -p $(dir $@)
	ld -nostdlib -static -T src/arch/$(ARCH)/restorer/restorer.lds -o $@ $(RST_OBJ)
	@# The blob is copied to an arbitrary address: it must need no relocation at all.
	@if readelf -r $@ | grep -q 'R_'; then echo "restorer has relocations" >&2; readelf -r $@ >&2; exit 1; fi
$(BUILD)/restorer/restorer.bin: $(BUILD)/restorer/restorer.elf
	objcopy -O binary $< $@
$(BUILD)/restorer/blob.o: $(BUILD)/restorer/restorer.bin src/arch/$(ARCH)/restorer-blob.S
	$(CC) -c -DBLOB='"$<"' -o $@ src/arch/$(ARCH)/restorer-blob.S

$(BUILD)/crest: $(CREST_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

units: $(UNITS)
$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/unit.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lpthread

cases: $(CASES)
$(BUILD)/tests/cases/%: tests/cases/%.c tests/cases/case.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -D_GNU_SOURCE -Itests/cases -o $@ $< -lpthread

$(BUILD)/bench/%: bench/%.c bench/json-str.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -D_GNU_SOURCE -o $@ $< -lpthread
# Built by `all` too: tests/test_bench.py runs the workload and the driver.
bench-progs: $(BENCHES)
# The bench driver (make bench): bench/crestbench/*.c, one program.
$(BUILD)/bench/crestbench: $(wildcard bench/crestbench/*.c bench/crestbench/*.h) bench/json-str.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -D_GNU_SOURCE -o $@ $(filter %.c,$^)

check: test-deps
	$(MAKE) all
	@scripts/check.sh

demo: deps
	$(MAKE) $(BUILD)/crest $(BUILD)/demo-counter
	@scripts/demo.sh

$(BUILD)/demo-counter: demo/counter.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -o $@ $<

# Dumps and restores bench/workload trees; tables on stdout, figures in build/bench/bench.json.
bench: deps
	$(MAKE) $(BUILD)/crest bench-progs
	@scripts/bench.sh

install: $(BUILD)/crest
	install -D -m 0755 $(BUILD)/crest $(DESTDIR)$(PREFIX)/bin/crest
	install -D -m 0644 docs/crest.1 $(DESTDIR)$(PREFIX)/share/man/man1/crest.1

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
