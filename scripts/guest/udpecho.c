// SPDX-License-Identifier: GPL-2.0
/*
 * selfmig-udpecho: echo every UDP datagram back to its sender. The
 * benchmark's outside downtime probe: unlike a TCP echo, a datagram lost
 * while the guest is stopped costs nothing later (no retransmission
 * timeout), so the largest gap between echoes is the time the guest was
 * unreachable. Built static by scripts/mkinitramfs.sh.
 *
 * Usage: selfmig-udpecho PORT   (runs until killed)
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	char buf[2048];
	int fd;

	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: selfmig-udpecho PORT\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	addr.sin_port = htons(atoi(argv[1]));
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("selfmig-udpecho");
		return 1;
	}
	for (;;) {
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0,
				     (struct sockaddr *)&from, &len);

		if (n < 0)
			continue;
		sendto(fd, buf, n, 0, (struct sockaddr *)&from, len);
	}
}
