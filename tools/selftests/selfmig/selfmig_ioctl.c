// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/self_migrate ioctl ABI: every validation path.
 *
 * The structures are written out here in C from
 * Documentation/userspace-api/selfmig.rst rather than taken from the Rust
 * definitions, so this test also checks that the documented layout is the
 * one the module decodes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest.h"

struct selfmig_start {
	uint32_t size;
	uint32_t flags;
	uint8_t addr[4];
	uint16_t port;
	uint16_t reserved0;
	uint32_t max_downtime_ms;
	uint32_t token_len;
	uint64_t token_ptr;
	uint64_t reserved[4];
};

struct selfmig_status {
	uint32_t size;
	uint32_t state;
	uint32_t round;
	uint32_t last_errno;
	uint64_t pages_sent;
	uint64_t bytes_sent;
	uint64_t dirty_pages;
	uint64_t expected_downtime_us;
	uint64_t downtime_us;
	uint64_t total_ms;
	uint64_t reserved[2];
};

#define SELFMIG_IOC_MAGIC 0xB9
#define SELFMIG_IOC_START _IOW(SELFMIG_IOC_MAGIC, 1, struct selfmig_start)
#define SELFMIG_IOC_STATUS _IOR(SELFMIG_IOC_MAGIC, 2, struct selfmig_status)
#define SELFMIG_IOC_ABORT _IO(SELFMIG_IOC_MAGIC, 3)
#define SELFMIG_START_VERIFY (1u << 0)
#define SELFMIG_START_TRACKER_HASH (1u << 1)
#define SELFMIG_START_NO_COMPRESS (1u << 3)
#define SELFMIG_START_NO_REHEARSE (1u << 4)

static int fd;
static uint8_t token[16] = { 1, 2, 3, 4 };
static uint8_t big_token[2048];

static struct selfmig_start good_start(void)
{
	struct selfmig_start s = {
		.size = sizeof(s),
		.flags = SELFMIG_START_VERIFY,
		.addr = { 10, 77, 0, 3 },
		.port = 7000,
		.token_len = sizeof(token),
		.token_ptr = (uintptr_t)token,
	};
	return s;
}

/* Issue an ioctl and return 0 or the errno it failed with. */
static int do_ioctl(unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) == 0 ? 0 : errno;
}

static void expect(const char *name, int got, int want)
{
	if (got != want)
		ksft_print_msg("%s: got %s (%d), want %s (%d)\n", name,
			       got ? strerror(got) : "success", got,
			       want ? strerror(want) : "success", want);
	ksft_test_result(got == want, "%s\n", name);
}

int main(void)
{
	struct selfmig_start s;
	struct selfmig_status st;
	int err;

	ksft_print_header();
	fd = open("/dev/self_migrate", O_RDWR);
	if (fd < 0)
		ksft_exit_skip("/dev/self_migrate: %s (module not loaded?)\n", strerror(errno));
	ksft_set_plan(22);

	_Static_assert(sizeof(struct selfmig_start) == 64, "start is 64 bytes");
	_Static_assert(sizeof(struct selfmig_status) == 80, "status is 80 bytes");

	memset(&st, 0xff, sizeof(st));
	err = do_ioctl(SELFMIG_IOC_STATUS, &st);
	expect("STATUS succeeds", err, 0);
	ksft_test_result(st.size == sizeof(st) && st.state == 0 && st.round == 0,
			 "STATUS reports size 80 and state idle\n");
	expect("STATUS to a NULL pointer", do_ioctl(SELFMIG_IOC_STATUS, NULL), EFAULT);

	s = good_start();
	s.size = 56;
	expect("START with a wrong size field", do_ioctl(SELFMIG_IOC_START, &s), EINVAL);
	s = good_start();
	expect("START command encoding another size",
	       do_ioctl(_IOW(SELFMIG_IOC_MAGIC, 1, uint64_t), &s), EINVAL);
	expect("START from a NULL pointer", do_ioctl(SELFMIG_IOC_START, NULL), EFAULT);
	s.flags = 1u << 9;
	expect("START with unknown flags", do_ioctl(SELFMIG_IOC_START, &s), EINVAL);
	s = good_start();
	s.reserved0 = 1;
	expect("START with reserved0 set", do_ioctl(SELFMIG_IOC_START, &s), EINVAL);
	s = good_start();
	s.reserved[2] = 1;
	expect("START with reserved[2] set", do_ioctl(SELFMIG_IOC_START, &s), EINVAL);
	s = good_start();
	s.port = 0;
	expect("START with port 0", do_ioctl(SELFMIG_IOC_START, &s), ERANGE);
	s = good_start();
	memset(s.addr, 0, 4);
	expect("START with address 0.0.0.0", do_ioctl(SELFMIG_IOC_START, &s), EADDRNOTAVAIL);
	s = good_start();
	s.max_downtime_ms = 60001;
	expect("START with max_downtime_ms 60001", do_ioctl(SELFMIG_IOC_START, &s), ERANGE);
	s = good_start();
	s.token_ptr = (uintptr_t)big_token;
	s.token_len = 1025;
	expect("START with a 1025-byte token", do_ioctl(SELFMIG_IOC_START, &s), E2BIG);
	s.token_len = 0;
	expect("START without a token", do_ioctl(SELFMIG_IOC_START, &s), ENOKEY);
	s = good_start();
	s.token_ptr = 16;
	expect("START with an unmapped token pointer", do_ioctl(SELFMIG_IOC_START, &s), EFAULT);

	expect("ABORT while idle", do_ioctl(SELFMIG_IOC_ABORT, NULL), EINVAL);
	expect("unknown command number", do_ioctl(_IO(SELFMIG_IOC_MAGIC, 42), NULL), ENOTTY);
	expect("foreign ioctl type", do_ioctl(_IO('Z', 1), NULL), ENOTTY);

	memset(&st, 0xff, sizeof(st));
	err = do_ioctl(SELFMIG_IOC_STATUS, &st);
	ksft_test_result(err == 0 && st.state == 0,
			 "still idle after every refused START\n");

	/*
	 * This guest has no route to the target: a valid START runs the
	 * migration, which fails to connect and leaves the guest running.
	 */
	/* virtme-ng's virtio devices bypass the DMA API: no paging tracker. */
	s = good_start();
	expect("START with the paging tracker, a device bypassing the DMA API",
	       do_ioctl(SELFMIG_IOC_START, &s), EOPNOTSUPP);

	s = good_start();
	s.flags |= SELFMIG_START_TRACKER_HASH | SELFMIG_START_NO_COMPRESS |
		   SELFMIG_START_NO_REHEARSE;
	expect("START with valid arguments (hash tracker, no compression, no rehearsal)",
	       do_ioctl(SELFMIG_IOC_START, &s), 0);
	for (int i = 0; i < 100; i++) {
		if (do_ioctl(SELFMIG_IOC_STATUS, &st) || (st.state != 1 && st.state != 2))
			break;
		usleep(100000);
	}
	if (st.state != 6 || st.last_errno == 0)
		ksft_print_msg("state %u last_errno %u\n", st.state, st.last_errno);
	ksft_test_result(st.state == 6 && st.last_errno != 0,
			 "unreachable target: STATUS reports failed with an errno\n");

	close(fd);
	ksft_finished();
}
