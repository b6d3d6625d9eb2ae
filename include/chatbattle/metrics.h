/*
 * metrics.h - process-wide counters, gauges and latency histograms (from
 * src/metrics.def), dependency health, and the Prometheus text rendering
 * served at /metrics.
 *
 * Updates are relaxed atomics: lock-free, wait-free, any thread.  Each metric
 * should have one writer thread so that updates never contend.
 */
#ifndef CHATBATTLE_METRICS_H
#define CHATBATTLE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct cb_ring;

enum cb_metric_id {
#define CB_COUNTER(name, help) CB_M_##name,
#define CB_GAUGE(name, help) CB_M_##name,
#define CB_HISTOGRAM(name, help) CB_M_##name,
#include "metrics.def"
#undef CB_COUNTER
#undef CB_GAUGE
#undef CB_HISTOGRAM
	CB_M_COUNT
};

/* Histogram bucket upper bounds in microseconds (the last is +Inf). */
#define CB_HIST_BUCKETS 24

extern _Atomic uint64_t cb_metric_values[CB_M_COUNT];

static inline void cb_metric_add(enum cb_metric_id id, uint64_t n)
{
	atomic_fetch_add_explicit(&cb_metric_values[id], n,
				  memory_order_relaxed);
}

static inline void cb_metric_set(enum cb_metric_id id, uint64_t v)
{
	atomic_store_explicit(&cb_metric_values[id], v, memory_order_relaxed);
}

static inline uint64_t cb_metric_get(enum cb_metric_id id)
{
	return atomic_load_explicit(&cb_metric_values[id],
				    memory_order_relaxed);
}

/* Records one latency sample in histogram id. */
void cb_metric_observe_us(enum cb_metric_id id, uint64_t us);

/*
 * Returns the q-quantile (0 < q < 1) of histogram id in microseconds, by
 * linear interpolation inside the bucket; 0 when it has no samples.
 */
uint64_t cb_metric_quantile_us(enum cb_metric_id id, double q);

/* Resets every metric (tests and benchmarks only). */
void cb_metrics_reset(void);

/* Adds a ring to the /metrics output (depth, throughput, waits).  Call
 * before threads start; at most 16 rings. */
void cb_metrics_register_ring(const struct cb_ring *r);

/* Dependencies whose state /api/health reports. */
enum cb_dep {
	CB_DEP_KAFKA,
	CB_DEP_CASSANDRA,
	CB_DEP_IRC,
	CB_DEP_CACHE,
	CB_DEP_COUNT
};

enum cb_dep_state {
	CB_DEP_UNKNOWN = 0, /* not yet tried */
	CB_DEP_UP = 1,
	CB_DEP_DOWN = 2,
	CB_DEP_DISABLED = 3, /* not used by this process */
};

void cb_health_set(enum cb_dep dep, enum cb_dep_state state);
enum cb_dep_state cb_health_get(enum cb_dep dep);
const char *cb_dep_name(enum cb_dep dep);

/*
 * Renders every metric as Prometheus text exposition format into a malloc'd
 * buffer.  Returns 0 or CB_E_NOMEM; the caller frees *out.
 */
int cb_metrics_render(char **out, size_t *out_len);

/* Process figures for /metrics and benchmarks. */
uint64_t cb_process_rss_bytes(void);
uint64_t cb_process_peak_rss_bytes(void);
uint64_t cb_process_cpu_us(void);

#endif
