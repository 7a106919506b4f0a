/* The benchmark's floor: a UDP responder that answers every datagram with one
 * fixed DNS response (only the query ID is copied in, so that the client can
 * match it). It does the kernel's part of a DNS server and nothing else: what
 * a real server costs above it is that server's own work per query.
 *
 *   canned 127.0.0.1:PORT [THREADS]
 *
 * One thread per socket, SO_REUSEPORT, recvmmsg/sendmmsg in batches of 64. */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define QBUF  512

/* svc-1.ns1.svc.cluster.local. IN A -> 10.96.0.1, TTL 5: the size of a
 * typical cluster answer. */
static const unsigned char fixed[] = {
    0x00, 0x00, 0x84, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 5,	  's',	'v',  'c',
    '-',  '1',	3,    'n',  's',  '1',	3,    's',  'v',  'c',	7,    'c',  'l',  'u',	's',  't',
    'e',  'r',	5,    'l',  'o',  'c',	'a',  'l',  0,	  0x00, 0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x04, 10,	96,   0,    1,
};

static struct sockaddr_in listen_addr;

static void *serve(void *arg)
{
	(void)arg;
	static __thread unsigned char in[BATCH][QBUF], out[BATCH][sizeof(fixed)];
	static __thread struct sockaddr_in peers[BATCH];
	static __thread struct iovec in_iov[BATCH], out_iov[BATCH];
	static __thread struct mmsghdr in_msg[BATCH], out_msg[BATCH];

	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int one = 1, rcvbuf = 4 << 20;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) < 0) {
		perror("canned: socket");
		exit(1);
	}
	/* the same receive buffer svcdns asks for */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	for (int i = 0; i < BATCH; i++) {
		memcpy(out[i], fixed, sizeof(fixed));
		in_iov[i] = (struct iovec){in[i], QBUF};
		out_iov[i] = (struct iovec){out[i], sizeof(fixed)};
	}
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			memset(&in_msg[i].msg_hdr, 0, sizeof(in_msg[i].msg_hdr));
			in_msg[i].msg_hdr.msg_name = &peers[i];
			in_msg[i].msg_hdr.msg_namelen = sizeof(peers[i]);
			in_msg[i].msg_hdr.msg_iov = &in_iov[i];
			in_msg[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(fd, in_msg, BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("canned: recvmmsg");
			exit(1);
		}
		int k = 0;
		for (int i = 0; i < n; i++) {
			if (in_msg[i].msg_len < 12)
				continue;
			out[k][0] = in[i][0];
			out[k][1] = in[i][1];
			memset(&out_msg[k].msg_hdr, 0, sizeof(out_msg[k].msg_hdr));
			out_msg[k].msg_hdr.msg_name = &peers[i];
			out_msg[k].msg_hdr.msg_namelen = in_msg[i].msg_hdr.msg_namelen;
			out_msg[k].msg_hdr.msg_iov = &out_iov[k];
			out_msg[k].msg_hdr.msg_iovlen = 1;
			k++;
		}
		for (int sent = 0; sent < k;) {
			int r = sendmmsg(fd, out_msg + sent, (unsigned)(k - sent), 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				break; /* a full socket drops the rest, as a busy server would */
			}
			sent += r;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: canned ADDR:PORT [THREADS]\n");
		return 2;
	}
	char host[64];
	const char *colon = strrchr(argv[1], ':');
	if (!colon || (size_t)(colon - argv[1]) >= sizeof(host)) {
		fprintf(stderr, "canned: bad address %s\n", argv[1]);
		return 2;
	}
	memcpy(host, argv[1], (size_t)(colon - argv[1]));
	host[colon - argv[1]] = '\0';
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_port = htons((unsigned short)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &listen_addr.sin_addr) != 1) {
		fprintf(stderr, "canned: bad address %s\n", argv[1]);
		return 2;
	}
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	if (threads < 1 || threads > 256)
		threads = 1;
	pthread_t t;
	for (int i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, serve, NULL) != 0) {
			fprintf(stderr, "canned: cannot start thread %d\n", i);
			return 1;
		}
	serve(NULL);
	return 0;
}
