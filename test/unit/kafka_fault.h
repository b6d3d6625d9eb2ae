/*
 * kafka_fault.h - makes rd_kafka_seek_partitions behave, on demand, like
 * librdkafka 2.0.2's on a busy machine, to prove that the aggregator's
 * seeks do not give up (the defect fixed by commit 8bf7615: 2.0.2 reads the
 * timeout as microseconds, fixed in 2.1.0, librdkafka #4230; agg.c passed
 * 10000 and 5000 "ms", so a seek gave up after 10 ms, and a recovery's
 * "seek: Timed out waiting for 3 remaining partition seek(s) to finish"
 * stopped the aggregator).
 *
 * Include it in exactly one file of a test program: it defines
 * rd_kafka_seek_partitions in the executable, which the linker then prefers
 * to librdkafka's for every object of the program (src/ included).  While
 * t_seek_slow is set, the broker thread is taken to need
 * T_SEEK_BROKER_US microseconds to finish the seeks, and a bounded wait is
 * read as 2.0.2 reads it, timeout_ms microseconds: a wait shorter than that
 * starts the seeks (as 2.0.2 has by then) and returns its timed-out error;
 * an unbounded wait (-1) or a longer one goes on to the real function
 * (dlsym RTLD_NEXT), as does an asynchronous seek (0: no wait).  The
 * counters say which case each call was.  All atomic: the aggregator's
 * thread calls it.
 */
#ifndef CB_KAFKA_FAULT_H
#define CB_KAFKA_FAULT_H

#include <dlfcn.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>

/* 100 ms: a broker thread behind a load average of 180 (t70-parity). */
#define T_SEEK_BROKER_US 100000

static atomic_bool t_seek_slow;
/* calls that waited for the seeks, that did not wait (0), that the
 * emulated 2.0.2 timed out */
static atomic_long t_seek_waited, t_seek_async, t_seek_timed_out;

rd_kafka_error_t *
rd_kafka_seek_partitions(rd_kafka_t *rk,
			 rd_kafka_topic_partition_list_t *partitions,
			 int timeout_ms)
{
	rd_kafka_error_t *(*real)(rd_kafka_t *,
				  rd_kafka_topic_partition_list_t *, int);
	rd_kafka_error_t *e;

	*(void **)&real = dlsym(RTLD_NEXT, "rd_kafka_seek_partitions");
	if (timeout_ms == 0) {
		atomic_fetch_add(&t_seek_async, 1);
		return real(rk, partitions, 0);
	}
	if (!atomic_load(&t_seek_slow) || timeout_ms < 0 ||
	    timeout_ms >= T_SEEK_BROKER_US) {
		atomic_fetch_add(&t_seek_waited, 1);
		return real(rk, partitions, timeout_ms);
	}
	/* 2.0.2: the seeks are queued to the broker thread, then the wait
	 * for their results gives up after timeout_ms microseconds. */
	e = real(rk, partitions, 0);
	if (e != NULL)
		return e;
	atomic_fetch_add(&t_seek_timed_out, 1);
	return rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT,
				  "Timed out waiting for %d remaining "
				  "partition seek(s) to finish",
				  partitions->cnt);
}

#endif
