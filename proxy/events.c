/* The datapath's own event loop inside the control loop: one epoll set for
 * every connection and flow (edge-triggered, registered once), polled by a
 * single libuv handle, and a ready list for work a budget cut short. */
#include "proxy/datapath.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EV_BATCH 256

static void on_idle(uv_idle_t *h);

int proxy_ev_add(struct proxy *p, int fd, uint32_t events, struct pev *e)
{
	struct epoll_event ev = {.events = events | EPOLLET, .data.ptr = e};
	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void proxy_ev_ready(struct proxy *p, struct pev *e)
{
	if (e->queued)
		return;
	e->queued = true;
	dlist_add(p->ready.prev, &e->ready); /* at the tail: first come, first resumed */
	if (!uv_is_active((uv_handle_t *)&p->idle))
		uv_idle_start(&p->idle, on_idle);
}

void proxy_ev_cancel(struct pev *e)
{
	if (!e->queued)
		return;
	e->queued = false;
	dlist_del(&e->ready);
}

static void on_idle(uv_idle_t *h)
{
	struct proxy *p = h->data;
	/* One pass over what is ready now; what gets requeued waits for the
	 * next turn, after the loop has polled everything else. */
	struct dlist batch;
	dlist_init(&batch);
	if (p->ready.next != &p->ready) {
		batch.next = p->ready.next;
		batch.prev = p->ready.prev;
		batch.next->prev = &batch;
		batch.prev->next = &batch;
		dlist_init(&p->ready);
	}
	while (batch.next != &batch) {
		struct pev *e = (struct pev *)((char *)batch.next - offsetof(struct pev, ready));
		dlist_del(&e->ready);
		e->queued = false;
		e->on_resume(e);
	}
	if (p->ready.next == &p->ready)
		uv_idle_stop(&p->idle);
}

static void on_epoll(uv_poll_t *h, int status, int events)
{
	struct proxy *p = h->data;
	struct epoll_event evs[EV_BATCH];
	(void)status;
	(void)events;
	/* Objects closed while this batch runs are freed only by their timer's
	 * close callback, after it: a later event in the batch may name them
	 * (they ignore it once closing). */
	int n = epoll_wait(p->epfd, evs, EV_BATCH, 0);
	for (int i = 0; i < n; i++) {
		struct pev *e = evs[i].data.ptr;
		e->on_event(e, evs[i].events);
	}
}

int proxy_ev_open(struct proxy *p)
{
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	if (uv_poll_init(p->loop, &p->ep_poll, p->epfd) < 0) {
		close(p->epfd);
		return -ENOMEM;
	}
	uv_idle_init(p->loop, &p->idle);
	p->ep_poll.data = p->idle.data = p;
	uv_poll_start(&p->ep_poll, UV_READABLE, on_epoll);
	return 0;
}

void proxy_ev_close(struct proxy *p, uv_close_cb cb)
{
	uv_close((uv_handle_t *)&p->ep_poll, cb);
	uv_close((uv_handle_t *)&p->idle, cb);
}
