//! The order of requests that reach one MQTT connection by two paths: rumqttc's request
//! channel, and direct writes by the task that polls the connection (MQTT 3.1.1, see
//! `super::direct`). With direct writes, a request goes through the channel only to wake an
//! idle polling task; nothing is written directly while a request in the channel has not
//! left, and rumqttc reports what was written directly before it takes more from its
//! channel. So rumqttc's "sent" reports come in the order the requests were handed over,
//! which is what matches packet ids to records (publisher) and keeps PUBACKs in arrival order
//! (subscriber).

/// Where the requests handed to a connection are, as far as their order goes.
#[derive(Debug, Default)]
pub struct Handoff {
    /// The polling task writes requests directly (MQTT 3.1.1).
    direct: bool,
    /// Requests in rumqttc's channel, not yet reported sent (counted with direct writes only).
    pub(crate) in_channel: usize,
    /// Requests written directly, not yet reported sent.
    pub(crate) direct_unreported: usize,
    /// The polling task is writing a batch.
    pub(crate) writing: bool,
}

impl Handoff {
    pub fn new(direct: bool) -> Self {
        Self {
            direct,
            ..Self::default()
        }
    }

    /// Whether the polling task writes requests directly.
    pub fn direct(&self) -> bool {
        self.direct
    }

    /// Whether the polling task will look for work soon without being woken: it is writing,
    /// or rumqttc has requests of it still to report.
    pub fn task_busy(&self) -> bool {
        self.writing || self.in_channel > 0 || self.direct_unreported > 0
    }

    /// Whether a direct write may start: direct writes, and every request handed to the
    /// channel (before anything now waiting) has left.
    pub fn may_write(&self) -> bool {
        self.direct && self.in_channel == 0
    }

    /// A request went into rumqttc's channel.
    pub fn through_channel(&mut self) {
        if self.direct {
            self.in_channel += 1;
        }
    }

    /// The polling task starts a direct write.
    pub fn write_started(&mut self) {
        self.writing = true;
    }

    /// The direct write ended; rumqttc took `taken` requests and will report each.
    pub fn write_ended(&mut self, taken: usize) {
        self.writing = false;
        self.direct_unreported += taken;
    }

    /// rumqttc reported a request sent: the ones written directly come first, then the
    /// channel's.
    pub fn reported_sent(&mut self) {
        if self.direct_unreported > 0 {
            self.direct_unreported -= 1;
        } else {
            self.in_channel = self.in_channel.saturating_sub(1);
        }
    }

    /// The connection is gone, and with it the requests in rumqttc's channel and the reports
    /// not yet returned.
    pub fn reset(&mut self) {
        self.in_channel = 0;
        self.direct_unreported = 0;
        self.writing = false;
    }
}
