// Unit tests of agentlockd's event loop with a fake pass: signals, merging of SIGUSR1, stop during
// a pass, reloads, the watchdog, and start-up failure. Real signals are raised in this process.

#include "daemon_test_support.hpp"
#include "service.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <iostream>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace agentlock::daemon {
namespace {

using namespace std::chrono_literals;
using agentlock::test::TempDir;
using agentlock::test::wait_until;
using agentlock::test::write_file;

// A pass that records how it was called and can be held until the test lets it go.
class FakePass {
public:
    PassReport run(const PassOptions& options, const Config& config) {
        const int now_running = ++m_running;
        m_max_running = std::max(m_max_running.load(), now_running);
        m_dry_run_seen = options.dry_run;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_tmux_socket = config.tmux_socket;
            ++m_started;
            m_cv.notify_all();
            // Hold while the gate is closed, unless the daemon cancels the pass (polled: the
            // daemon sets the flag without notifying us).
            const auto deadline = std::chrono::steady_clock::now() + 30s;
            while (!m_open && !(options.cancel != nullptr && options.cancel->load()) &&
                   std::chrono::steady_clock::now() < deadline) {
                m_cv.wait_for(lock, 5ms);
            }
            m_saw_cancel = options.cancel != nullptr && options.cancel->load();
        }
        PassReport r;
        const bool root_ok = m_roots_ok.load();
        for (const auto& root : options.roots) {
            r.roots.push_back({root, root_ok, root_ok ? "" : "open " + root + ": gone"});
        }
        r.tmux.state = TmuxState::ok;
        --m_running;
        ++m_finished;
        return r;
    }

    void close_gate() {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_open = false;
    }
    void open_gate() {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_open = true;
        m_cv.notify_all();
    }
    int started() {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_started;
    }
    std::string tmux_socket() {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_tmux_socket;
    }

    std::atomic<int> m_running{0};
    std::atomic<int> m_max_running{0};
    std::atomic<int> m_finished{0};
    std::atomic<bool> m_dry_run_seen{false};
    std::atomic<bool> m_saw_cancel{false};
    std::atomic<bool> m_roots_ok{true};

private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_open = true;
    int m_started = 0;
    std::string m_tmux_socket;
};

class ServiceTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_notify = std::make_unique<test::NotifySocket>(m_tmp.sub("notify.sock"));
        ::setenv("NOTIFY_SOCKET", m_notify->path().c_str(), 1);
        m_sink = std::make_shared<test::KeepingSink>();
        m_log = std::make_unique<EventLog>(LogFormat::json, LogLevel::debug, m_sink);
    }

    void TearDown() override {
        if (HasFailure()) {
            for (const auto& line : m_sink->lines()) {
                std::cerr << "log: " << line << "\n";
            }
        }
        if (m_thread.joinable()) {
            ::raise(SIGTERM);
            m_thread.join();
        }
        m_service.reset();
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
    }

    Config config(std::chrono::milliseconds interval = 1h) {
        Config c;
        c.roots = {m_tmp.path()};
        c.interval = interval;
        return c;
    }

    // Starts the service on its own thread; returns once the first pass has been logged (the
    // signal handlers are installed by then).
    // The log stays JSON across reloads, as with --log-format json.
    void start(Config c, const std::string& config_path = "", ConfigOverrides overrides = {}) {
        c.log_format = LogFormat::json;
        overrides.log_format = LogFormat::json;
        m_service = std::make_unique<Service>(std::move(c), config_path, std::move(overrides),
                                              *m_log, polling_backend());
        m_service->set_after_pass([this](const PassReport&) { ++m_passes_logged; });
        m_thread = std::thread([this] { m_exit_code = m_service->run(); });
        ASSERT_TRUE(wait_until([this] { return m_passes_logged.load() >= 1; }));
    }

    int stop_and_join() {
        ::raise(SIGTERM);
        m_thread.join();
        return m_exit_code;
    }

    // Full passes only, from m_pass: without check and tmux runners the daemon polls.
    Backend polling_backend() {
        Backend b;
        b.pass = [this](const PassOptions& o, const Config& cfg, PassSink&) {
            return m_pass.run(o, cfg);
        };
        return b;
    }

    TempDir m_tmp;
    std::unique_ptr<test::NotifySocket> m_notify;
    std::shared_ptr<test::KeepingSink> m_sink;
    std::unique_ptr<EventLog> m_log;
    FakePass m_pass;
    std::unique_ptr<Service> m_service;
    std::thread m_thread;
    std::atomic<int> m_passes_logged{0};
    int m_exit_code = -1;
};

TEST_F(ServiceTest, FirstPassThenReadyThenStopsCleanly) {
    start(config());
    EXPECT_TRUE(m_notify->wait_for("READY=1"));
    auto msgs = m_notify->messages();
    ASSERT_FALSE(msgs.empty());
    EXPECT_EQ(msgs[0].rfind("READY=1\nSTATUS=pass 1: 0 locks, 0 removed, tmux ok", 0), 0u)
        << msgs[0];
    EXPECT_EQ(m_sink->count("\"event\":\"daemon.started\""), 1u);
    const std::size_t before = m_notify->messages().size();
    EXPECT_EQ(stop_and_join(), 0);
    EXPECT_TRUE(m_notify->wait_for("STOPPING=1", before));
    EXPECT_EQ(m_sink->count("\"event\":\"daemon.stopping\""), 1u);
    EXPECT_EQ(m_pass.m_finished.load(), 1);
}

TEST_F(ServiceTest, TheTimerRunsPassesEveryInterval) {
    start(config(20ms));
    EXPECT_TRUE(wait_until([this] { return m_passes_logged.load() >= 4; }));
    EXPECT_EQ(stop_and_join(), 0);
    EXPECT_EQ(m_pass.m_max_running.load(), 1) << "never two passes at once";
    EXPECT_TRUE(m_notify->wait_for("STATUS=pass 4:"));
}

TEST_F(ServiceTest, Sigusr1RunsAPassNowAndRepeatsWhileRunningMergeIntoOne) {
    start(config());
    ASSERT_EQ(m_pass.started(), 1);

    // Idle: SIGUSR1 starts a pass at once. Hold it.
    m_pass.close_gate();
    ::raise(SIGUSR1);
    ASSERT_TRUE(wait_until([this] { return m_pass.started() == 2; }));

    // Three more while it runs: each is seen, all merge into one more pass.
    for (std::size_t i = 1; i <= 3; ++i) {
        ::raise(SIGUSR1);
        ASSERT_TRUE(wait_until([&] {
            return m_sink->count("\"event\":\"pass.requested\"") == i + 1;
        })) << i;
    }
    m_pass.open_gate();
    ASSERT_TRUE(wait_until([this] { return m_passes_logged.load() == 3; }));
    EXPECT_EQ(stop_and_join(), 0);
    EXPECT_EQ(m_pass.started(), 3) << "one pass for the three merged requests";
    EXPECT_EQ(m_pass.m_max_running.load(), 1);
}

TEST_F(ServiceTest, SigtermDuringAPassCancelsItAndExitsZero) {
    start(config());
    m_pass.close_gate(); // the next pass hangs until cancelled
    ::raise(SIGUSR1);
    ASSERT_TRUE(wait_until([this] { return m_pass.started() == 2; }));
    const std::size_t before = m_notify->messages().size();
    EXPECT_EQ(stop_and_join(), 0);
    EXPECT_TRUE(m_pass.m_saw_cancel.load()) << "the pass saw the cancel flag";
    EXPECT_EQ(m_pass.m_finished.load(), 2) << "the daemon waited for the pass to end";
    EXPECT_TRUE(m_notify->wait_for("STOPPING=1", before));
    EXPECT_EQ(m_sink->count("\"pass_running\":\"true\""), 1u);
}

TEST_F(ServiceTest, SighupReloadsAGoodConfigAndKeepsTheOldOnAFailure) {
    const std::string path = m_tmp.sub("agentlockd.json");
    write_file(path, "{\"roots\": [\"" + m_tmp.path() + "\"], \"interval\": \"1h\"}");
    start(config(), path);
    ASSERT_TRUE(m_notify->wait_for("READY=1"));
    EXPECT_FALSE(m_pass.m_dry_run_seen.load());

    // Good: dry_run turns on, seen by the next pass.
    write_file(path, "{\"roots\": [\"" + m_tmp.path() + "\"], \"dry_run\": true}");
    std::size_t mark = m_notify->messages().size();
    ::raise(SIGHUP);
    ASSERT_TRUE(wait_until([this] { return m_sink->count("\"event\":\"config.reloaded\"") == 1; }));
    ASSERT_TRUE(m_notify->wait_for("RELOADING=1\nMONOTONIC_USEC=", mark));
    ASSERT_TRUE(m_notify->wait_for("READY=1", mark + 1));
    EXPECT_EQ(m_sink->count("\"changed\":\"interval,dry_run\""), 1u);
    ::raise(SIGUSR1);
    ASSERT_TRUE(wait_until([this] { return m_passes_logged.load() == 2; }));
    EXPECT_TRUE(m_pass.m_dry_run_seen.load());

    // Bad: an unknown key. Rejected, named, old config kept.
    write_file(path, "{\"roots\": [\"" + m_tmp.path() + "\"], \"dry_runn\": false}");
    mark = m_notify->messages().size();
    ::raise(SIGHUP);
    ASSERT_TRUE(wait_until([this] { return m_sink->count("\"event\":\"config.rejected\"") == 1; }));
    EXPECT_EQ(m_sink->count("key \\\"dry_runn\\\" is unknown"), 1u);
    ASSERT_TRUE(m_notify->wait_for("RELOADING=1", mark));
    ASSERT_TRUE(m_notify->wait_for("READY=1", mark + 1));
    ::raise(SIGUSR1);
    ASSERT_TRUE(wait_until([this] { return m_passes_logged.load() == 3; }));
    EXPECT_TRUE(m_pass.m_dry_run_seen.load()) << "the previous config stays in force";
    EXPECT_EQ(stop_and_join(), 0);
}

TEST_F(ServiceTest, FlagsStillWinAfterAReload) {
    const std::string path = m_tmp.sub("agentlockd.json");
    write_file(path, "{\"roots\": [\"" + m_tmp.path() + "\"], \"tmux_socket\": \"file\"}");
    ConfigOverrides o;
    o.tmux_socket = "flagsocket";
    auto c = resolve_config(path, o);
    ASSERT_TRUE(c) << c.error().message;
    start(*c, path, o);
    EXPECT_EQ(m_pass.tmux_socket(), "flagsocket");
    write_file(path, "{\"roots\": [\"" + m_tmp.path() + "\"], \"tmux_socket\": \"other-file\"}");
    ::raise(SIGHUP);
    ASSERT_TRUE(wait_until([this] { return m_sink->count("\"event\":\"config.reloaded\"") == 1; }));
    ::raise(SIGUSR1);
    ASSERT_TRUE(wait_until([this] { return m_passes_logged.load() == 2; }));
    EXPECT_EQ(m_pass.tmux_socket(), "flagsocket");
    EXPECT_EQ(stop_and_join(), 0);
}

TEST_F(ServiceTest, WatchdogPingsComeFromTheLoop) {
    ::setenv("WATCHDOG_USEC", "100000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    start(config());
    // While a pass hangs, the loop still pings.
    m_pass.close_gate();
    ::raise(SIGUSR1);
    ASSERT_TRUE(wait_until([this] { return m_pass.started() == 2; }));
    const std::size_t mark = m_notify->messages().size();
    EXPECT_TRUE(m_notify->wait_for("WATCHDOG=1", mark));
    EXPECT_TRUE(m_notify->wait_for("WATCHDOG=1", m_notify->messages().size()));
    m_pass.open_gate();
    EXPECT_EQ(stop_and_join(), 0);
}

// A watchdog ping that fell due while the loop was busy must not arm the timer again once the
// stop has ended it: a timer armed after the stop keeps the loop, and the daemon, alive for ever.
// Here the loop is busy logging daemon.stopping (a slow journal) while the cancelled pass ends
// and a ping falls due (a 2 ms watchdog pings every millisecond), so the pass's end and the ping
// are queued together, the ping second.
TEST_F(ServiceTest, AStopEndsTheLoopEvenWithAWatchdogPingAlreadyDue) {
    ::setenv("WATCHDOG_USEC", "2000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    // The pings come faster than anything else reads the socket: drain it, or the daemon's
    // sd_notify blocks on a full socket queue (systemd reads its own socket at once).
    std::atomic<bool> draining{true};
    std::thread drain([&] {
        while (draining) {
            m_notify->messages();
            std::this_thread::sleep_for(200us);
        }
    });
    m_sink->slow_down("\"event\":\"daemon.stopping\"", 30ms);
    for (int round = 0; round < 5; ++round) {
        m_passes_logged = 0;
        const int started_before = m_pass.started();
        start(config());
        m_pass.close_gate(); // the next pass runs until the stop cancels it
        ::raise(SIGUSR1);
        ASSERT_TRUE(wait_until([&] { return m_pass.started() == started_before + 2; }));
        ::raise(SIGTERM);
        std::atomic<bool> ended{false};
        std::thread waiter([&] {
            m_thread.join();
            ended = true;
        });
        if (!wait_until([&] { return ended.load(); }, 10s)) {
            // The loop never ends, and nothing can unblock this thread now.
            std::cerr << "round " << round << ": the loop did not end after SIGTERM\n";
            std::abort();
        }
        waiter.join();
        EXPECT_EQ(m_exit_code, 0) << "round " << round;
        EXPECT_TRUE(m_pass.m_saw_cancel.load()) << "round " << round << ": stopped during a pass";
        m_service.reset();
        m_pass.open_gate();
    }
    draining = false;
    drain.join();
}

TEST_F(ServiceTest, NoUsableRootAtStartExitsTwoWithoutReady) {
    m_pass.m_roots_ok = false;
    m_service =
        std::make_unique<Service>(config(), "", ConfigOverrides{}, *m_log, polling_backend());
    EXPECT_EQ(m_service->run(), 2);
    EXPECT_EQ(m_sink->count("\"event\":\"daemon.failed\""), 1u);
    EXPECT_EQ(m_sink->count("\"event\":\"root.unavailable\""), 1u);
    for (const auto& m : m_notify->messages()) {
        EXPECT_EQ(m.find("READY=1"), std::string::npos) << m;
    }
}

TEST_F(ServiceTest, ARootLostAfterStartIsLoggedAndRetried) {
    start(config(20ms));
    m_pass.m_roots_ok = false;
    ASSERT_TRUE(
        wait_until([this] { return m_sink->count("\"event\":\"root.unavailable\"") == 1; }));
    const int seen = m_passes_logged.load();
    ASSERT_TRUE(wait_until([&] { return m_passes_logged.load() >= seen + 2; }));
    EXPECT_EQ(m_sink->count("\"event\":\"root.unavailable\""), 1u) << "once, not every pass";
    m_pass.m_roots_ok = true;
    ASSERT_TRUE(wait_until([this] { return m_sink->count("\"event\":\"root.recovered\"") == 1; }));
    EXPECT_EQ(stop_and_join(), 0);
}

} // namespace
} // namespace agentlock::daemon
