package nextwatch.flink;

import org.apache.flink.api.common.serialization.AbstractDeserializationSchema;

/**
 * A Kafka message value as raw bytes, with a null value (a tombstone) as zero bytes.
 *
 * <p>Flink's value-only Kafka deserialization drops a record whose value deserializes to null, so a
 * job would never see it. As zero bytes it reaches the job's decoder, which dead-letters and counts it
 * like every other message it cannot apply.
 */
public final class NullAsEmptyBytes extends AbstractDeserializationSchema<byte[]> {
    private static final long serialVersionUID = 1L;
    private static final byte[] EMPTY = new byte[0];

    @Override
    public byte[] deserialize(byte[] message) {
        return message == null ? EMPTY : message;
    }
}
