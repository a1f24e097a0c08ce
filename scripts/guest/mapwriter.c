// SPDX-License-Identifier: GPL-2.0
/*
 * selfmig-mapwriter: write through a shared file mapping and unmap it, over
 * and over. The kernel tears the page-table entries down, Dirty bits
 * included, while the pages live on in the page cache: the case the paging
 * tracker needs MMU notifiers for. Built static by scripts/mkinitramfs.sh.
 *
 * Usage: selfmig-mapwriter FILE MIB
 *   Each pass maps FILE (MIB MiB, MAP_SHARED), writes the pass number into
 *   every page in order, unmaps it and sleeps 50 ms. Runs until killed.
 * Usage: selfmig-mapwriter --check FILE
 *   Exits 0 if the file is consistent: the pass numbers never increase
 *   from one page to the next and differ by at most one (a pass may have
 *   been cut short). A page that missed its last write breaks this.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static int check(const char *path)
{
	uint64_t first = 0, prev = 0, v;
	struct stat st;
	size_t pages;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < PAGE) {
		fprintf(stderr, "%s: cannot read it\n", path);
		return 1;
	}
	pages = st.st_size / PAGE;
	for (size_t i = 0; i < pages; i++) {
		if (pread(fd, &v, sizeof(v), (off_t)i * PAGE) != sizeof(v)) {
			fprintf(stderr, "%s: short read at page %zu\n", path, i);
			return 1;
		}
		if (i == 0)
			first = prev = v;
		if (v > prev || first - v > 1) {
			fprintf(stderr, "%s: page %zu holds pass %llu after pass %llu (first page: %llu)\n",
				path, i, (unsigned long long)v, (unsigned long long)prev,
				(unsigned long long)first);
			return 1;
		}
		prev = v;
	}
	printf("%s: %zu pages, passes %llu..%llu\n", path, pages,
	       (unsigned long long)prev, (unsigned long long)first);
	return 0;
}

int main(int argc, char **argv)
{
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	uint64_t pass = 0;
	size_t len;
	int fd;

	if (argc == 3 && !strcmp(argv[1], "--check"))
		return check(argv[2]);
	if (argc != 3 || atol(argv[2]) <= 0) {
		fprintf(stderr, "usage: selfmig-mapwriter FILE MIB | --check FILE\n");
		return 2;
	}
	len = (size_t)atol(argv[2]) << 20;
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (map == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		pass++;
		for (size_t off = 0; off < len; off += PAGE)
			memcpy(map + off, &pass, sizeof(pass));
		munmap(map, len);
		nanosleep(&pause, NULL);
	}
}
