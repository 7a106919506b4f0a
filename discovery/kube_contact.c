/* Contact with the API server as proof times per stream, kept apart from the
 * reflectors so that tests can drive it with their own clock. See
 * kube_contact.h. */
#include "discovery/kube_contact.h"

#include <string.h>

void kube_contact_init(struct kube_contact *c, unsigned probe_ms)
{
	memset(c, 0, sizeof(*c));
	c->probe_ms = probe_ms ? probe_ms : 1;
}

void kube_contact_set_open(struct kube_contact *c, unsigned i, bool open)
{
	if (i < KUBE_CONTACT_STREAMS)
		c->open[i] = open;
}

void kube_contact_set_absent(struct kube_contact *c, unsigned i, bool absent)
{
	if (i < KUBE_CONTACT_STREAMS)
		c->absent[i] = absent;
}

void kube_contact_heard(struct kube_contact *c, unsigned i, uint64_t now_ms)
{
	if (i < KUBE_CONTACT_STREAMS && now_ms > c->ok_ms[i])
		c->ok_ms[i] = now_ms;
}

void kube_contact_probe_answered(struct kube_contact *c, uint64_t now_ms)
{
	c->probing = false;
	for (unsigned i = 0; i < KUBE_CONTACT_STREAMS; i++)
		if (c->open[i])
			kube_contact_heard(c, i, now_ms);
}

bool kube_contact_probe_due(const struct kube_contact *c, uint64_t now_ms)
{
	if (c->probing)
		return false;
	for (unsigned i = 0; i < KUBE_CONTACT_STREAMS; i++)
		if (c->open[i] && !c->absent[i] &&
		    (c->ok_ms[i] == 0 || now_ms - c->ok_ms[i] >= c->probe_ms))
			return true;
	return false;
}

int64_t kube_contact_age_ms(const struct kube_contact *c, uint64_t now_ms)
{
	uint64_t oldest = UINT64_MAX;

	for (unsigned i = 0; i < KUBE_CONTACT_STREAMS; i++) {
		if (c->absent[i])
			continue;
		if (c->ok_ms[i] == 0)
			return -1;
		if (c->ok_ms[i] < oldest)
			oldest = c->ok_ms[i];
	}
	return now_ms > oldest ? (int64_t)(now_ms - oldest) : 0;
}
