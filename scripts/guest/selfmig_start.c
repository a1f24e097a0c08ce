// SPDX-License-Identifier: GPL-2.0
/*
 * selfmig-start: start a migration through /dev/self_migrate (the ioctl
 * path) and wait for its end. A stand-in for the CLI inside the busybox test
 * guests; built static by scripts/mkinitramfs.sh.
 *
 * Usage: selfmig-start A.B.C.D PORT TOKEN_HEX [verify]
 * Exit status: 0 once the migration started and ended in "migrated" (as
 * seen from wherever the guest then runs), 1 on failure, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct selfmig_start {
	uint32_t size, flags;
	uint8_t addr[4];
	uint16_t port, reserved0;
	uint32_t max_downtime_ms, token_len;
	uint64_t token_ptr, reserved[4];
};

struct selfmig_status {
	uint32_t size, state, round, last_errno;
	uint64_t pages_sent, bytes_sent, dirty_pages, expected_downtime_us;
	uint64_t downtime_us, total_ms, reserved[2];
};

#define SELFMIG_IOC_START _IOW(0xB9, 1, struct selfmig_start)
#define SELFMIG_IOC_STATUS _IOR(0xB9, 2, struct selfmig_status)
#define SELFMIG_START_VERIFY 1

int main(int argc, char **argv)
{
	struct selfmig_start s = { .size = sizeof(s) };
	struct selfmig_status st;
	uint8_t token[1024];
	size_t len = 0;
	int fd;

	if (argc < 4 || argc > 5 || inet_pton(AF_INET, argv[1], s.addr) != 1 ||
	    strlen(argv[3]) % 2 || strlen(argv[3]) / 2 > sizeof(token) ||
	    (argc == 5 && strcmp(argv[4], "verify"))) {
		fprintf(stderr, "usage: selfmig-start A.B.C.D PORT TOKEN_HEX [verify]\n");
		return 2;
	}
	if (argc == 5)
		s.flags |= SELFMIG_START_VERIFY;
	for (; len < strlen(argv[3]) / 2; len++)
		sscanf(argv[3] + 2 * len, "%2hhx", &token[len]);
	s.port = atoi(argv[2]);
	s.token_len = len;
	s.token_ptr = (uintptr_t)token;
	fd = open("/dev/self_migrate", O_RDWR);
	if (fd < 0 || ioctl(fd, SELFMIG_IOC_START, &s)) {
		fprintf(stderr, "selfmig-start: %s\n", strerror(errno));
		return 1;
	}
	/* Poll; if the migration commits this process resumes on the target. */
	for (;;) {
		usleep(100000);
		if (ioctl(fd, SELFMIG_IOC_STATUS, &st))
			return 1;
		if (st.state == 5) {
			printf("migrated: %llu pages sent, round %u\n",
			       (unsigned long long)st.pages_sent, st.round);
			return 0;
		}
		if (st.state == 6 || st.state == 7) {
			printf("failed: errno %u\n", st.last_errno);
			return 1;
		}
	}
}
