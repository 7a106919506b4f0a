/* Contact with the API server as proof times per stream, kept apart from the
 * reflectors so that tests can drive it with their own clock. See
 * kube_contact.h. */
#include "discovery/kube_contact.h"

#include <string.h>

void kube_contact_init(struct kube_contact *c, unsigned probe_ms, unsigned n)
{
	memset(c, 0, sizeof(*c));
	c->probe_ms = probe_ms ? probe_ms : 1;
	c->n = n < KUBE_CONTACT_STREAMS ? n : KUBE_CONTACT_STREAMS;
}

void kube_contact_set_open(struct kube_contact *c, unsigned i, bool open)
{
	if (i < c->n)
		c->open[i] = open;
}

void kube_contact_heard(struct kube_contact *c, unsigned i, uint64_t now_ms)
{
	if (i < c->n && now_ms > c->ok_ms[i])
		c->ok_ms[i] = now_ms;
}

void kube_contact_probe_answered(struct kube_contact *c, uint64_t now_ms)
{
	c->probing = false;
	for (unsigned i = 0; i < c->n; i++)
		if (c->open[i])
			kube_contact_heard(c, i, now_ms);
}

bool kube_contact_probe_due(const struct kube_contact *c, uint64_t now_ms)
{
	if (c->probing)
		return false;
	for (unsigned i = 0; i < c->n; i++)
		if (c->open[i] && (c->ok_ms[i] == 0 || now_ms - c->ok_ms[i] >= c->probe_ms))
			return true;
	return false;
}

int64_t kube_contact_age_ms(const struct kube_contact *c, uint64_t now_ms)
{
	uint64_t oldest = UINT64_MAX;

	for (unsigned i = 0; i < c->n; i++) {
		if (c->ok_ms[i] == 0)
			return -1;
		if (c->ok_ms[i] < oldest)
			oldest = c->ok_ms[i];
	}
	return now_ms > oldest ? (int64_t)(now_ms - oldest) : 0;
}
