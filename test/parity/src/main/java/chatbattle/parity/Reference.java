/*
 * Reference.java - the Kafka Streams application chatbattle replaces, as a
 * reference for the parity test (test/integration/t70-parity, see
 * docs/aggregation.md "Parity with Kafka Streams").
 *
 *   run BOOTSTRAP INPUT OUTPUT APP_ID STATE_DIR WINDOW_S GRACE_S
 *       twitch-chat-messages (key = channel, value = ChatMessage JSON) ->
 *       10-minute tumbling event-time windows, count() per key,
 *       exactly_once_v2 -> OUTPUT in channel-stats' original fields:
 *       {"channel_id","message_count","window_start","window_end",
 *        "window_duration_seconds"}, key = channel.
 *   offsets BOOTSTRAP TOPIC TIMEOUT_S GROUP...
 *       waits until every group has committed the topic's end offsets (or
 *       the deadline passes), then prints "GROUP PARTITION COMMITTED END"
 *       lines; exit status 0 when all were reached, 3 otherwise.
 *
 * Choices, each the Kafka Streams default or the original's unless said:
 *   - event time: ChatTimestampExtractor (the JSON "timestamp"; invalid
 *     JSON or a bad timestamp -> -1, which Kafka Streams skips);
 *   - TimeWindows.ofSizeAndGrace(size, grace), windows [start, end);
 *   - caching disabled, so every update is forwarded at once (only the
 *     final value per window is compared, which caching does not change);
 *   - an in-memory window store that keeps windows for 100 years instead
 *     of the default size + grace: retention never decides anything in a
 *     run without faults; after a restart it would decide whether a record
 *     the restarted processor accepts (see docs) finds its old window, and
 *     the test's model of Kafka Streams assumes it does (the test's input
 *     spans 2023 to 2100);
 *   - its changelog topic keeps records forever (retention.ms -1): the
 *     broker deletes by record timestamp, which is event time here, and a
 *     recorded input from the past would otherwise lose the changelog
 *     behind the application's back (found by the test: a restart restored
 *     an empty window).  The test creates OUTPUT the same way.
 */
package chatbattle.parity;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.Stores;

public final class Reference {
	private Reference() {
	}

	public static void main(String[] args) throws Exception {
		if (args.length == 8 && args[0].equals("run")) {
			run(args[1], args[2], args[3], args[4], args[5],
			    Long.parseLong(args[6]), Long.parseLong(args[7]));
			return;
		}
		if (args.length >= 5 && args[0].equals("offsets")) {
			List<String> groups = new ArrayList<>();
			for (int i = 4; i < args.length; i++)
				groups.add(args[i]);
			System.exit(offsets(args[1], args[2], Long.parseLong(args[3]), groups));
		}
		System.err.println("usage: Reference run BOOTSTRAP INPUT OUTPUT APP_ID STATE_DIR WINDOW_S GRACE_S\n"
				   + "       Reference offsets BOOTSTRAP TOPIC TIMEOUT_S GROUP...");
		System.exit(2);
	}

	static String json(String channel, long start, long end, long count, long sizeS) {
		StringBuilder b = new StringBuilder(128);
		b.append("{\"channel_id\":");
		quote(b, channel);
		b.append(",\"message_count\":").append(count)
		 .append(",\"window_start\":").append(start)
		 .append(",\"window_end\":").append(end)
		 .append(",\"window_duration_seconds\":").append(sizeS).append('}');
		return b.toString();
	}

	private static void quote(StringBuilder b, String s) {
		b.append('"');
		for (int i = 0; i < s.length(); i++) {
			char c = s.charAt(i);
			if (c == '"' || c == '\\')
				b.append('\\').append(c);
			else if (c < 0x20)
				b.append(String.format("\\u%04x", (int) c));
			else
				b.append(c);
		}
		b.append('"');
	}

	private static void run(String bootstrap, String input, String output, String appId,
				String stateDir, long sizeS, long graceS) throws InterruptedException {
		Properties p = new Properties();
		p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
		p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
		p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
		p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
		p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
		p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
		p.put(StreamsConfig.DEFAULT_TIMESTAMP_EXTRACTOR_CLASS_CONFIG, ChatTimestampExtractor.class);
		p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
		/* A killed instance's membership ends after this, not after the
		 * default 45 s, so the restarted one gets its tasks quickly. */
		p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
		p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);

		Duration size = Duration.ofSeconds(sizeS), grace = Duration.ofSeconds(graceS);
		StreamsBuilder builder = new StreamsBuilder();
		builder.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
		       .groupByKey()
		       .windowedBy(TimeWindows.ofSizeAndGrace(size, grace))
		       .count(Materialized.<String, Long>as(
				      Stores.inMemoryWindowStore("parity-counts", Duration.ofDays(36525), size, false))
			      .withLoggingEnabled(Map.of(TopicConfig.RETENTION_MS_CONFIG, "-1"))
			      .withKeySerde(Serdes.String())
			      .withValueSerde(Serdes.Long())
			      .withCachingDisabled())
		       .toStream()
		       .map((w, n) -> KeyValue.pair(w.key(),
						   json(w.key(), w.window().start(), w.window().end(), n, sizeS)))
		       .to(output, Produced.with(Serdes.String(), Serdes.String()));

		KafkaStreams streams = new KafkaStreams(builder.build(), p);
		CountDownLatch done = new CountDownLatch(1);
		streams.setStateListener((now, before) -> {
			System.out.println("reference: state " + now);
			System.out.flush();
			if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING)
				done.countDown();
		});
		Runtime.getRuntime().addShutdownHook(new Thread(() -> {
			streams.close(Duration.ofSeconds(20));
			done.countDown();
		}));
		streams.start();
		done.await();
		/* ERROR is a failure of the reference, never something to compare. */
		if (streams.state() == KafkaStreams.State.ERROR)
			System.exit(1);
	}

	private static int offsets(String bootstrap, String topic, long timeoutS, List<String> groups)
		throws Exception {
		Properties p = new Properties();
		p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
		try (Admin admin = Admin.create(p)) {
			TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
			Map<TopicPartition, OffsetSpec> want = new HashMap<>();
			for (var info : d.partitions())
				want.put(new TopicPartition(topic, info.partition()), OffsetSpec.latest());
			Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends =
				admin.listOffsets(want).all().get();
			long deadline = System.nanoTime() + timeoutS * 1_000_000_000L;
			Map<String, Map<TopicPartition, OffsetAndMetadata>> got = new HashMap<>();
			boolean all;
			do {
				all = true;
				for (String g : groups) {
					Map<TopicPartition, OffsetAndMetadata> c =
						admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
					got.put(g, c);
					for (var e : ends.entrySet()) {
						OffsetAndMetadata o = c.get(e.getKey());
						if (o == null || o.offset() < e.getValue().offset())
							all = false;
					}
				}
				if (!all)
					Thread.sleep(200); /* polling interval of a bounded wait */
			} while (!all && System.nanoTime() < deadline);
			for (String g : groups)
				for (var e : ends.entrySet()) {
					OffsetAndMetadata o = got.get(g).get(e.getKey());
					System.out.println(g + " " + e.getKey().partition() + " "
							   + (o == null ? -1 : o.offset()) + " " + e.getValue().offset());
				}
			return all ? 0 : 3;
		}
	}
}
