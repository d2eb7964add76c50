#pragma once
// The fixture the suites that run the real agentlockd over a temp root share (E2E, Events,
// Metrics): the directories, tmux server and config they start the daemon with, and the daemon
// and sd_notify receiver they tear down.

#include "e2e_support.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace agentlock::e2e {

/// A temp dir (m_dir, its real path) with an empty root (m_root) and an empty config file
/// (m_config: given with --config, so that an installed /etc/agentlockd/agentlockd.json never
/// leaks into a test); a private tmux server with one session, "anchor", so that tmux answers
/// "ok"; and at most one daemon (m_daemon) and one sd_notify receiver (notify()), which TearDown
/// kills and closes.
class DaemonFixture : public ::testing::Test, protected WorkerRoot {
protected:
    /// `tail_chars`: how much of the daemon's output TearDown prints when the test failed.
    explicit DaemonFixture(std::size_t tail_chars = 4000) : m_tail_chars(tail_chars) {}

    void SetUp() override {
        m_dir = real_path(m_tmp.path());
        m_root = m_dir + "/root";
        test::make_dirs(m_root);
        m_tmux.new_session("anchor");
        m_config = m_dir + "/empty-config.json";
        test::write_file(m_config, "{}\n");
    }

    void TearDown() override {
        tear_down_daemon(m_daemon, HasFailure(), m_tail_chars);
        m_notify.reset();
    }

    /// The receiver of the daemon's sd_notify messages, bound on first use.
    NotifyReceiver& notify() {
        if (!m_notify) {
            m_notify = std::make_unique<NotifyReceiver>(m_dir + "/notify.sock");
        }
        return *m_notify;
    }

    /// The flags for our config, root and tmux server, JSON logs, and passes an hour apart (only
    /// the first pass runs within a test, so what happens later is the work of events); `extra`
    /// is appended.
    std::vector<std::string> hourly_args(const std::vector<std::string>& extra = {}) const {
        std::vector<std::string> a{"--config",
                                   m_config,
                                   "--root",
                                   m_root,
                                   "--tmux-socket",
                                   m_tmux.socket_name(),
                                   "--log-format",
                                   "json",
                                   "--interval",
                                   "1h",
                                   "--full-pass-interval",
                                   "1h"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    /// Starts the daemon with `spec`, NOTIFY_SOCKET pointing at notify().
    DaemonProcess& start_daemon(DaemonSpec spec) {
        spec.notify_socket = notify().path();
        m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
        return *m_daemon;
    }

    /// Waits for READY=1 (the first pass has ended); throws, failing the test, when it does not
    /// come or the daemon exits first.
    void wait_ready(DaemonProcess& d) {
        const bool ready =
            test::wait_until([&] { return notify().count_key("READY", "1") > 0 || !d.running(); });
        if (!ready || notify().count_key("READY", "1") == 0) {
            throw std::runtime_error("no READY=1 from agentlockd\n" + d.tail());
        }
    }

    test::TempDir m_tmp;
    test::TmuxServerFixture m_tmux;
    std::string m_dir;
    std::string m_config;
    std::unique_ptr<NotifyReceiver> m_notify;
    std::unique_ptr<DaemonProcess> m_daemon;

private:
    std::size_t m_tail_chars;
};

} // namespace agentlock::e2e
