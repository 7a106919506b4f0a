/* SipHash-1-3 (one round per 8-byte block, three to finish) under one random
 * key per process. 1-3 rather than 2-4: the cache hashes every forwarded
 * query, and against guessing a table's layout 1-3 is the margin that the
 * hash tables of common language runtimes settled on. See shash.h. */
#include "common/shash.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"

/* Written once, before any reader exists (see shash.h); read without locks. */
static uint64_t key0, key1;
static atomic_bool keyed;
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;

static inline uint64_t rotl(uint64_t x, unsigned b)
{
	return x << b | x >> (64 - b);
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = rotl(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = rotl(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = rotl(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = rotl(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = rotl(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = rotl(v2, 32);                                                                 \
	} while (0)

#define COMPRESS(m)                                                                                \
	do {                                                                                       \
		v3 ^= (m);                                                                         \
		SIPROUND;                                                                          \
		v0 ^= (m);                                                                         \
	} while (0)

uint64_t shash_bytes(uint64_t tag, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v0 = key0 ^ 0x736f6d6570736575ull;
	uint64_t v1 = key1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = key0 ^ 0x6c7967656e657261ull;
	uint64_t v3 = key1 ^ 0x7465646279746573ull;
	COMPRESS(tag);
	size_t n = len;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t m = load_le64(p);
		COMPRESS(m);
	}
	/* The last block: the bytes left, and the message length (tag included)
	 * in its top byte. */
	uint64_t last = (uint64_t)(len + 8) << 56;
	switch (n) {
	case 7:
		last |= (uint64_t)p[6] << 48;
		/* fall through */
	case 6:
		last |= (uint64_t)p[5] << 40;
		/* fall through */
	case 5:
		last |= (uint64_t)p[4] << 32;
		/* fall through */
	case 4:
		last |= (uint64_t)p[3] << 24;
		/* fall through */
	case 3:
		last |= (uint64_t)p[2] << 16;
		/* fall through */
	case 2:
		last |= (uint64_t)p[1] << 8;
		/* fall through */
	case 1:
		last |= p[0];
		break;
	default:
		break;
	}
	COMPRESS(last);
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t shash_u64(uint64_t v)
{
	return shash_bytes(v, NULL, 0);
}

static void key_store(const uint8_t key[SHASH_KEY_SIZE])
{
	key0 = load_le64(key);
	key1 = load_le64(key + 8);
	atomic_store_explicit(&keyed, true, memory_order_release);
}

void shash_set_key(const uint8_t key[SHASH_KEY_SIZE])
{
	pthread_mutex_lock(&key_lock);
	key_store(key);
	pthread_mutex_unlock(&key_lock);
}

/* getrandom() blocks only until the kernel's pool is first seeded, long past
 * by the time a DNS server starts; /dev/urandom is for kernels or sandboxes
 * without the system call. */
static int random_fill(uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = getrandom(buf + got, len - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got == len)
		return 0;
	int err = errno ? errno : EIO;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -err;
	int ret = 0;
	for (got = 0; got < len;) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	return ret;
}

int shash_init(void)
{
	if (atomic_load_explicit(&keyed, memory_order_acquire))
		return 0;
	int ret = 0;
	uint8_t key[SHASH_KEY_SIZE];
	pthread_mutex_lock(&key_lock);
	if (atomic_load_explicit(&keyed, memory_order_relaxed))
		goto out;
	ret = random_fill(key, sizeof(key));
	if (ret < 0) {
		log_error("hash key: no random bytes from getrandom or /dev/urandom: %s",
			  strerror(-ret));
		goto out;
	}
	key_store(key);
out:
	pthread_mutex_unlock(&key_lock);
	explicit_bzero(key, sizeof(key));
	return ret;
}
