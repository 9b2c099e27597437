//! Two admin calls made through librdkafka's C API, because rdkafka 0.39 lacks them in its
//! safe API: CreateTopics with Kafka's error message per topic (rdkafka keeps only the code,
//! and "Unknown topic config name: foo" is what a user needs to read), and
//! IncrementalAlterConfigs (KIP-339; rdkafka offers only the deprecated AlterConfigs, which
//! replaces a topic's whole configuration).
//!
//! Each call runs on a queue of its own and blocks the calling thread until the result
//! arrives or the timeout passes: call it from `spawn_blocking`. Every native object is owned
//! by a guard that destroys it, so no path leaks one.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;

/// A topic to create.
pub struct NewTopic<'a> {
    pub name: &'a str,
    /// -1: the cluster's default.
    pub partitions: i32,
    /// -1: the cluster's default.
    pub replication_factor: i32,
    pub config: &'a BTreeMap<String, String>,
}

/// Why Kafka (or librdkafka) refused: the code and the message that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RDKafkaErrorCode,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            write!(f, "{:?}: {}", self.code, self.code)
        } else {
            write!(f, "{:?}: {}", self.code, self.message)
        }
    }
}

impl Refusal {
    fn local(message: impl Into<String>) -> Self {
        Self {
            code: RDKafkaErrorCode::InvalidArgument,
            message: message.into(),
        }
    }
}

/// The result of one topic of a CreateTopics request.
pub type TopicOutcome = (String, Result<(), Refusal>);

/// Creates the topics; the result of each, in the order given. `Err` for the whole call when
/// no result came (timeout, Kafka unreachable) or librdkafka refused the request.
pub fn create_topics(
    rk: *mut rd::rd_kafka_t,
    topics: &[NewTopic<'_>],
    timeout: Duration,
) -> Result<Vec<TopicOutcome>, Refusal> {
    let mut owned = Vec::with_capacity(topics.len());
    for t in topics {
        owned.push(NewTopicGuard::new(t)?);
    }
    let mut raw: Vec<*mut rd::rd_kafka_NewTopic_t> = owned.iter().map(|g| g.0).collect();
    let call = AdminCall::new(
        rk,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATETOPICS,
        timeout,
    )?;
    // SAFETY: the topics, options and queue are valid until their guards drop, after the
    // result event has been received and read.
    let event = unsafe {
        rd::rd_kafka_CreateTopics(rk, raw.as_mut_ptr(), raw.len(), call.options, call.queue);
        call.wait(timeout)?
    };
    // SAFETY: the event is a CreateTopics result (the only call on this queue); the topic
    // results live as long as the event.
    unsafe {
        let result = rd::rd_kafka_event_CreateTopics_result(event.0);
        if result.is_null() {
            return Err(Refusal::local("librdkafka returned no CreateTopics result"));
        }
        let mut count = 0usize;
        let items = rd::rd_kafka_CreateTopics_result_topics(result, &mut count);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let item = *items.add(i);
            let name = text(rd::rd_kafka_topic_result_name(item));
            let code = RDKafkaErrorCode::from(rd::rd_kafka_topic_result_error(item));
            let outcome = if code == RDKafkaErrorCode::NoError {
                Ok(())
            } else {
                Err(Refusal {
                    code,
                    message: text(rd::rd_kafka_topic_result_error_string(item)),
                })
            };
            out.push((name, outcome));
        }
        Ok(out)
    }
}

/// Sets `config` on the topic, leaving its other keys as they are.
pub fn incremental_alter_topic(
    rk: *mut rd::rd_kafka_t,
    topic: &str,
    config: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), Refusal> {
    let name = c_string(topic)?;
    // SAFETY: a new resource, owned by the guard.
    let resource = ConfigResourceGuard(unsafe {
        rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            name.as_ptr(),
        )
    });
    if resource.0.is_null() {
        return Err(Refusal::local(
            "librdkafka cannot allocate a config resource",
        ));
    }
    for (key, value) in config {
        let (k, v) = (c_string(key)?, c_string(value)?);
        // SAFETY: the resource is valid; librdkafka copies the strings.
        let error = unsafe {
            rd::rd_kafka_ConfigResource_add_incremental_config(
                resource.0,
                k.as_ptr(),
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                v.as_ptr(),
            )
        };
        if !error.is_null() {
            // SAFETY: a non-null error is ours to read and destroy.
            let message = unsafe {
                let m = text(rd::rd_kafka_error_string(error));
                rd::rd_kafka_error_destroy(error);
                m
            };
            return Err(Refusal::local(format!("{key}: {message}")));
        }
    }
    let call = AdminCall::new(
        rk,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        timeout,
    )?;
    let mut resources = [resource.0];
    // SAFETY: as in create_topics.
    let event = unsafe {
        rd::rd_kafka_IncrementalAlterConfigs(
            rk,
            resources.as_mut_ptr(),
            1,
            call.options,
            call.queue,
        );
        call.wait(timeout)?
    };
    // SAFETY: the event is an IncrementalAlterConfigs result; its resources live as long as it.
    unsafe {
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event.0);
        if result.is_null() {
            return Err(Refusal::local(
                "librdkafka returned no IncrementalAlterConfigs result",
            ));
        }
        let mut count = 0usize;
        let items = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let item = *items.add(i);
            let code = RDKafkaErrorCode::from(rd::rd_kafka_ConfigResource_error(item));
            if code != RDKafkaErrorCode::NoError {
                return Err(Refusal {
                    code,
                    message: text(rd::rd_kafka_ConfigResource_error_string(item)),
                });
            }
        }
    }
    Ok(())
}

/// Options and a result queue of one admin request.
struct AdminCall {
    options: *mut rd::rd_kafka_AdminOptions_t,
    queue: *mut rd::rd_kafka_queue_t,
}

impl AdminCall {
    fn new(
        rk: *mut rd::rd_kafka_t,
        op: rd::rd_kafka_admin_op_t,
        timeout: Duration,
    ) -> Result<Self, Refusal> {
        // SAFETY: rk is a live client handle (the caller holds its AdminClient).
        let call = unsafe {
            Self {
                options: rd::rd_kafka_AdminOptions_new(rk, op),
                queue: rd::rd_kafka_queue_new(rk),
            }
        };
        if call.options.is_null() || call.queue.is_null() {
            return Err(Refusal::local(
                "librdkafka cannot allocate an admin request",
            ));
        }
        let ms = millis(timeout);
        let mut err = [0 as c_char; 512];
        let ok = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
        // SAFETY: valid options; the buffer's size is passed.
        let mut result = unsafe {
            rd::rd_kafka_AdminOptions_set_request_timeout(
                call.options,
                ms,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        // CreateTopics only (librdkafka refuses it elsewhere): answer once the controller has
        // created the topics, not merely accepted the request.
        if result == ok && op == rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATETOPICS {
            // SAFETY: as above.
            result = unsafe {
                rd::rd_kafka_AdminOptions_set_operation_timeout(
                    call.options,
                    ms,
                    err.as_mut_ptr(),
                    err.len(),
                )
            };
        }
        if result != ok {
            // SAFETY: librdkafka wrote a NUL-terminated message into the buffer.
            return Err(Refusal::local(unsafe { text(err.as_ptr()) }));
        }
        Ok(call)
    }

    /// Waits for the result event; an error of the whole request becomes `Err`.
    ///
    /// # Safety
    /// A request must have been started on this call's queue.
    unsafe fn wait(&self, timeout: Duration) -> Result<EventGuard, Refusal> {
        // A little longer than the request timeout, so librdkafka reports its own timeout.
        let event = EventGuard(rd::rd_kafka_queue_poll(
            self.queue,
            millis(timeout + Duration::from_secs(2)),
        ));
        if event.0.is_null() {
            return Err(Refusal {
                code: RDKafkaErrorCode::OperationTimedOut,
                message: format!("no answer from Kafka within {} s", timeout.as_secs()),
            });
        }
        let code = RDKafkaErrorCode::from(rd::rd_kafka_event_error(event.0));
        if code != RDKafkaErrorCode::NoError {
            return Err(Refusal {
                code,
                message: text(rd::rd_kafka_event_error_string(event.0)),
            });
        }
        Ok(event)
    }
}

impl Drop for AdminCall {
    fn drop(&mut self) {
        // SAFETY: both were created in `new` and are destroyed once, here.
        unsafe {
            if !self.options.is_null() {
                rd::rd_kafka_AdminOptions_destroy(self.options);
            }
            if !self.queue.is_null() {
                rd::rd_kafka_queue_destroy(self.queue);
            }
        }
    }
}

struct EventGuard(*mut rd::rd_kafka_event_t);

impl Drop for EventGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: an event polled from our queue, destroyed once.
            unsafe { rd::rd_kafka_event_destroy(self.0) }
        }
    }
}

struct ConfigResourceGuard(*mut rd::rd_kafka_ConfigResource_t);

impl Drop for ConfigResourceGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by rd_kafka_ConfigResource_new, destroyed once.
            unsafe { rd::rd_kafka_ConfigResource_destroy(self.0) }
        }
    }
}

struct NewTopicGuard(*mut rd::rd_kafka_NewTopic_t);

impl NewTopicGuard {
    fn new(t: &NewTopic<'_>) -> Result<Self, Refusal> {
        let name = c_string(t.name)?;
        let mut err = [0 as c_char; 512];
        // SAFETY: valid strings and buffer; the result is owned by the guard.
        let guard = Self(unsafe {
            rd::rd_kafka_NewTopic_new(
                name.as_ptr(),
                t.partitions as c_int,
                t.replication_factor as c_int,
                err.as_mut_ptr(),
                err.len(),
            )
        });
        if guard.0.is_null() {
            // SAFETY: librdkafka wrote a NUL-terminated message into the buffer.
            return Err(Refusal::local(unsafe { text(err.as_ptr()) }));
        }
        for (key, value) in t.config {
            let (k, v) = (c_string(key)?, c_string(value)?);
            // SAFETY: valid topic and strings; librdkafka copies them.
            let code = RDKafkaErrorCode::from(unsafe {
                rd::rd_kafka_NewTopic_set_config(guard.0, k.as_ptr(), v.as_ptr())
            });
            if code != RDKafkaErrorCode::NoError {
                return Err(Refusal {
                    code,
                    message: format!("config {key}: {code}"),
                });
            }
        }
        Ok(guard)
    }
}

impl Drop for NewTopicGuard {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_NewTopic_new, destroyed once.
        unsafe { rd::rd_kafka_NewTopic_destroy(self.0) }
    }
}

fn c_string(s: &str) -> Result<CString, Refusal> {
    CString::new(s).map_err(|_| Refusal::local(format!("{s:?} contains a NUL byte")))
}

/// A C string owned by librdkafka, copied; "" for null.
///
/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn millis(d: Duration) -> c_int {
    c_int::try_from(d.as_millis()).unwrap_or(c_int::MAX)
}
