// SPDX-License-Identifier: GPL-2.0
/*
 * selfmig-dirty: dirty memory at a steady rate, for the benchmark's
 * workloads. Built static by scripts/mkinitramfs.sh.
 *
 * Usage: selfmig-dirty MIB MB_PER_S|max
 * Allocates MIB MiB and writes one word into every 4 KiB page in turn,
 * cycling through the buffer, pacing itself to MB_PER_S megabytes (10^6
 * bytes) of pages dirtied per second, or as fast as it can ("max"). Runs
 * until killed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t pages, i = 0;
	double rate, start, done = 0;
	uint64_t stamp = 0;
	volatile uint64_t *mem;

	if (argc != 3 || atol(argv[1]) <= 0 ||
	    (strcmp(argv[2], "max") && atof(argv[2]) <= 0)) {
		fprintf(stderr, "usage: selfmig-dirty MIB MB_PER_S|max\n");
		return 2;
	}
	pages = (size_t)atol(argv[1]) * 256;
	/* Pages per second; 0: unpaced. */
	rate = strcmp(argv[2], "max") ? atof(argv[2]) * 1e6 / 4096 : 0;
	mem = malloc(pages * 4096);
	if (!mem)
		return 1;
	start = now();
	for (;;) {
		/* 64 pages at a time, then sleep until the schedule catches up. */
		for (int k = 0; k < 64; k++, i = (i + 1) % pages)
			mem[i * 512] = ++stamp;
		done += 64;
		if (rate == 0)
			continue;
		double ahead = done / rate - (now() - start);
		if (ahead > 0) {
			struct timespec t = { (time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9) };
			nanosleep(&t, NULL);
		}
	}
}
