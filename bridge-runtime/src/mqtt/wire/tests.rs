use super::*;

fn read_all(bytes: &[u8], v5: bool) -> Packet {
    let mut buf = BytesMut::from(bytes);
    read(&mut buf, v5, MAX_PACKET as usize)
        .expect("decodes")
        .expect("complete")
}

#[test]
fn an_unlisted_reason_code_is_read_not_refused() {
    // PUBACK, pkid 7, reason 0x95 with a reason string "big".
    let bytes = [0x40, 10, 0, 7, 0x95, 6, 0x1F, 0, 3, b'b', b'i', b'g'];
    match read_all(&bytes, true) {
        Packet::PubAck(ack) => {
            assert_eq!((ack.pkid, ack.reason), (7, 0x95));
            assert_eq!(ack.reason_string.as_deref(), Some("big"));
        }
        other => panic!("not a PUBACK: {other:?}"),
    }
    match read_all(&[0x50, 3, 0, 9, 0xA7], true) {
        Packet::PubRec(ack) => assert_eq!((ack.pkid, ack.reason), (9, 0xA7)),
        other => panic!("not a PUBREC: {other:?}"),
    }
}

#[test]
fn a_packet_is_read_only_once_complete() {
    let mut buf = BytesMut::from(&[0x40, 2, 0][..]);
    assert!(read(&mut buf, false, 1024).expect("no error").is_none());
    buf.put_u8(5);
    buf.put_slice(&[0xD0, 0]);
    assert!(matches!(
        read(&mut buf, false, 1024),
        Ok(Some(Packet::PubAck(Ack { pkid: 5, .. })))
    ));
    assert!(matches!(
        read(&mut buf, false, 1024),
        Ok(Some(Packet::PingResp))
    ));
    assert!(buf.is_empty());
}

#[test]
fn a_publish_round_trips_through_the_codec_in_both_versions() {
    for v5 in [false, true] {
        let msg = Outbound {
            topic: "devices/1/cmd".to_owned(),
            payload: Bytes::from_static(b"on"),
            qos: 2,
            retain: true,
            user_properties: if v5 {
                vec![("k".to_owned(), "v".to_owned())]
            } else {
                Vec::new()
            },
        };
        let mut buf = BytesMut::new();
        publish_packet(&mut buf, v5, &msg, 42).expect("encodes");
        assert_eq!(
            buf.len(),
            crate::mqtt::publish_packet_size(v5, &msg.topic, 2, 2, &msg.user_properties)
        );
        match read_all(&buf, v5) {
            Packet::Publish(p) => {
                assert_eq!(p.topic, msg.topic);
                assert_eq!(p.payload, msg.payload);
                assert_eq!((p.qos, p.retain, p.ack.pkid), (2, true, 42));
                assert_eq!(p.user_properties, msg.user_properties);
            }
            other => panic!("not a PUBLISH: {other:?}"),
        }
    }
}

#[test]
fn a_message_read_does_not_keep_the_read_buffer_alive() {
    let msg = Outbound {
        topic: "devices/1/state".to_owned(),
        payload: Bytes::from(vec![7u8; 1000]),
        qos: 1,
        retain: false,
        user_properties: Vec::new(),
    };
    for v5 in [false, true] {
        let mut buf = BytesMut::with_capacity(4096);
        publish_packet(&mut buf, v5, &msg, 1).expect("encodes");
        buf.put_slice(&[0xD0, 0]); // and a PINGRESP behind it
        let Ok(Some(Packet::Publish(held))) = read(&mut buf, v5, 4096) else {
            panic!("a PUBLISH first");
        };
        // The message still waits (as in the window), yet the buffer is the connection's
        // alone: the room it took is reused in place, nothing is allocated or copied over.
        assert!(buf.try_reclaim(4000), "v5 {v5}: the read buffer is shared");
        assert_eq!(held.payload, msg.payload);
    }
}

#[test]
fn a_too_large_packet_is_an_error_before_it_is_buffered() {
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0x03][..]);
    assert!(matches!(
        read(&mut buf, false, 1000),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn acknowledgements_are_written_in_the_short_form_on_success() {
    let mut buf = BytesMut::new();
    ack_packet(&mut buf, 6, 0x0102, true, 0);
    ack_packet(&mut buf, 7, 3, true, 0x92);
    assert_eq!(&buf[..], &[0x62, 2, 1, 2, 0x70, 3, 0, 3, 0x92]);
}
