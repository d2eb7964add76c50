#pragma once
// An spdlog sink that writes native journal entries with structured fields (sd_journal_sendv).

#include "event_log.hpp"

#include <mutex>
#include <spdlog/sinks/base_sink.h>

namespace agentlock::daemon {

/// While alive, marks the event being logged on this thread so that JournalSink can send its
/// fields; spdlog itself only carries the formatted message.
class JournalEventScope {
public:
    JournalEventScope(LogLevel level, std::string_view event, const Fields& fields);
    ~JournalEventScope();
    JournalEventScope(const JournalEventScope&) = delete;
    JournalEventScope& operator=(const JournalEventScope&) = delete;
};

/// Sends each message to journald with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and, for events
/// logged inside a JournalEventScope, AGENTLOCK_EVENT and one AGENTLOCK_<KEY> per field. When
/// journald is absent or refuses the entry, the logfmt message goes to stderr instead, so nothing
/// is lost.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override {}
};

} // namespace agentlock::daemon
