/*
 * ChatTimestampExtractor.java - event time of a twitch-chat-messages record
 * for the reference processor: the ChatMessage's "timestamp" (epoch
 * milliseconds, Twitch's tmi-sent-ts).
 *
 *   - an integer, or a string of 1..18 digits (tmi.js passes the tag on as
 *     text): that value;
 *   - absent or null: the Kafka record's own timestamp;
 *   - anything else, or a value that is not one JSON object (RFC 8259:
 *     nothing after it, valid UTF-8): -1.
 * Kafka Streams skips every record with a negative timestamp (RecordQueue:
 * "Skipping record due to negative extracted timestamp") before it reaches
 * the window: it neither counts nor moves stream time, which is how
 * chatbattle treats the same records (dead letters).  A negative
 * "timestamp" (before the epoch) is returned as it is and skipped the same
 * way.
 */
package chatbattle.parity;

import java.io.IOException;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.streams.processor.TimestampExtractor;

public final class ChatTimestampExtractor implements TimestampExtractor {
	private static final ObjectMapper JSON = new ObjectMapper()
		.enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

	@Override
	public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
		Object v = record.value();
		JsonNode doc;

		if (!(v instanceof byte[]))
			return -1;
		try {
			doc = JSON.readTree((byte[]) v);
		} catch (IOException e) {
			return -1;
		}
		if (doc == null || !doc.isObject())
			return -1;
		JsonNode ts = doc.get("timestamp");
		if (ts == null || ts.isNull())
			return record.timestamp();
		if (ts.isIntegralNumber() && ts.canConvertToLong())
			return ts.asLong();
		if (ts.isTextual() && ts.asText().matches("[0-9]{1,18}"))
			return Long.parseLong(ts.asText());
		return -1;
	}
}
