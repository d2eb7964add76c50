// A tmux server per root through the real agentlockd: a gastown town found by its derived
// socket, several servers in one --once --json report (one down, one hanging), and the daemon's
// tmux re-poll asking each root's own server.
#include "e2e_support.hpp"
#include "gastown_socket.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace agentlock::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// Kills `tmux`'s server and waits until a client is told "no server running" (for a moment after
// kill-server, clients are told "server exited unexpectedly": unknown, rightly).
void kill_and_wait_gone(test::TmuxServerFixture& tmux) {
    tmux.kill_server();
    const bool gone = test::wait_until([&] {
        return test::run_command("tmux -L '" + tmux.socket_name() + "' list-sessions 2>&1")
                   .out.find("no server running") != std::string::npos;
    });
    if (!gone) {
        throw std::runtime_error("tmux server " + tmux.socket_name() + " did not go away");
    }
}

class TmuxServersE2E : public ::testing::Test {
protected:
    void SetUp() override { m_dir = m_tmp.path(); }
    void TearDown() override { tear_down_daemon(m_daemon, HasFailure()); }

    // A gastown-style lock in `root`/`worker`: gt prime's PID (dead), the agent's pane.
    std::string put_pane_lock(const std::string& root, const std::string& worker,
                              const std::string& pane) const {
        return WorkerRoot(root).put_lock(worker, test::go_lock_json(test::dead_pid(), rfc3339_now(),
                                                                    pane, test::local_hostname()));
    }

    std::string put_config(const std::string& content) const {
        const std::string path = m_dir + "/config.json";
        test::write_file(path, content);
        return path;
    }

    // `agentlockd --once --json --config CONFIG`: the report (the test fails unless it exits 0).
    json::object once_json(const std::string& config) {
        RunResult r = run_daemon(m_dir, {"--once", "--json", "--config", config});
        EXPECT_FALSE(r.timed_out);
        EXPECT_TRUE(r.status.exited && r.status.code == 0) << r.status.describe() << "\nstderr:\n"
                                                           << r.err;
        auto v = parse_json(r.out);
        EXPECT_TRUE(v && v->is_object()) << r.out << "\nstderr:\n" << r.err;
        return v && v->is_object() ? v->as_object() : json::object{};
    }

    // The entry of tmux_servers whose server is `server`, or an empty object.
    static json::object server_entry(const json::object& doc, const std::string& server) {
        if (const auto* servers = member(doc, "tmux_servers"); servers && servers->is_array()) {
            for (const auto& s : servers->as_array()) {
                if (s.is_object() && str_or(s.as_object(), "server") == server) {
                    return s.as_object();
                }
            }
        }
        return {};
    }

    static std::string verdict_of(const json::object& doc, const std::string& lock) {
        auto e = lock_entry(doc, lock);
        return e ? str_or(*e, "verdict") : "(not reported)";
    }

    test::TempDir m_tmp;
    std::string m_dir;
    std::unique_ptr<DaemonProcess> m_daemon;
};

TEST_F(TmuxServersE2E, AGastownTownsPaneHeldLocksLiveByTheTownsOwnServer) {
    const std::string town = m_dir + "/My Gas Town";
    test::make_dirs(town);
    test::TmuxServerFixture tmux(test::gastown_socket_name(town, m_dir + "/scratch"));
    tmux.new_session("gt-rig-w1");
    tmux.new_session("gt-rig-w2");
    const std::string pane1 = tmux.pane_of("gt-rig-w1");
    const std::string pane2 = tmux.pane_of("gt-rig-w2");
    const std::string lock1 = put_pane_lock(town, "rig/w1", pane1);
    const std::string lock2 = put_pane_lock(town, "rig/w2", pane2);
    const std::string config = put_config(R"({"roots": [{"path": ")" + town +
                                          R"(", "gastown": true}], "tmux_timeout": "2s"})");

    json::object doc = once_json(config);
    const std::string server = "-L " + tmux.socket_name();
    json::object entry = server_entry(doc, server);
    ASSERT_FALSE(entry.empty()) << server << " not in " << json::serialize(doc);
    EXPECT_EQ(str_or(entry, "state"), "ok") << json::serialize(entry);
    ASSERT_NE(member(entry, "roots"), nullptr);
    EXPECT_EQ(json::serialize(*member(entry, "roots")), json::serialize(json::array{town.c_str()}))
        << json::serialize(entry);
    EXPECT_EQ(str_or(member(doc, "tmux")->as_object(), "state"), "ok");
    EXPECT_EQ(verdict_of(doc, lock1), "held-by-session") << json::serialize(doc);
    EXPECT_EQ(verdict_of(doc, lock2), "held-by-session");
    EXPECT_TRUE(test::exists(lock1) && test::exists(lock2));

    // The pane goes (its window and session with it): only its lock goes.
    tmux.tmux("kill-pane -t '" + pane1 + "'");
    doc = once_json(config);
    EXPECT_EQ(verdict_of(doc, lock1), "stale") << json::serialize(doc);
    EXPECT_FALSE(test::exists(lock1));
    EXPECT_EQ(verdict_of(doc, lock2), "held-by-session");
    EXPECT_TRUE(test::exists(lock2));

    // The town's server exits: no server running, no session holds anything.
    kill_and_wait_gone(tmux);
    doc = once_json(config);
    EXPECT_EQ(str_or(server_entry(doc, server), "state"), "no-server") << json::serialize(doc);
    EXPECT_EQ(verdict_of(doc, lock2), "stale");
    EXPECT_FALSE(test::exists(lock2));
}

TEST_F(TmuxServersE2E, OneReportAnswersForEveryServerAndEachRootKeepsToItsOwn) {
    test::TmuxServerFixture up;
    test::TmuxServerFixture down;
    up.new_session("one");
    down.new_session("one");
    kill_and_wait_gone(down); // its socket stays: "no server running" (a missing socket is unknown)
    HangingListener hanging(m_dir + "/hanging.sock");
    const std::string a = m_dir + "/a", b = m_dir + "/b", c = m_dir + "/c";
    const std::string held = put_pane_lock(a, "w", "%0");
    const std::string unknown = put_pane_lock(b, "w", "%0");
    const std::string gone = put_pane_lock(c, "w", "%0");
    const std::string config =
        put_config(R"({"tmux_timeout": "500ms", "roots": [{"path": ")" + a +
                   R"(", "tmux_socket": ")" + up.socket_name() + R"("}, {"path": ")" + b +
                   R"(", "tmux_socket_path": ")" + m_dir + R"(/hanging.sock"}, {"path": ")" + c +
                   R"(", "tmux_socket": ")" + down.socket_name() + R"("}]})");

    json::object doc = once_json(config);
    ASSERT_EQ(member(doc, "tmux_servers")->as_array().size(), 3u) << json::serialize(doc);
    EXPECT_EQ(str_or(server_entry(doc, "-L " + up.socket_name()), "state"), "ok");
    const json::object hung = server_entry(doc, "-S " + m_dir + "/hanging.sock");
    EXPECT_EQ(str_or(hung, "state"), "unknown") << json::serialize(doc);
    EXPECT_FALSE(str_or(hung, "detail").empty());
    EXPECT_EQ(str_or(server_entry(doc, "-L " + down.socket_name()), "state"), "no-server");
    EXPECT_EQ(str_or(member(doc, "tmux")->as_object(), "state"), "ok") << "the first server's";

    EXPECT_EQ(verdict_of(doc, held), "held-by-session") << json::serialize(doc);
    EXPECT_TRUE(test::exists(held));
    EXPECT_EQ(verdict_of(doc, unknown), "unknown");
    EXPECT_TRUE(test::exists(unknown));
    EXPECT_EQ(verdict_of(doc, gone), "stale");
    EXPECT_FALSE(test::exists(gone));
}

TEST_F(TmuxServersE2E, TheDaemonsRepollAsksEachRootsOwnServer) {
    // Both servers have a %0; only B's own answer can free B's lock when B's pane goes.
    test::TmuxServerFixture a_server;
    test::TmuxServerFixture b_server;
    a_server.new_session("one");
    b_server.new_session("one");
    const std::string a = m_dir + "/a", b = m_dir + "/b";
    const std::string a_lock = put_pane_lock(a, "w", "%0");
    const std::string b_lock = put_pane_lock(b, "w", "%0");
    const std::string config =
        put_config(R"({"log_format": "json", "log_level": "debug", "roots": [{"path": ")" + a +
                   R"(", "tmux_socket": ")" + a_server.socket_name() + R"("}, {"path": ")" + b +
                   R"(", "tmux_socket": ")" + b_server.socket_name() + R"("}]})");
    DaemonSpec spec;
    spec.args = {"--config", config};
    m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
    DaemonProcess& d = *m_daemon;

    auto started = d.wait_for_event("daemon.started");
    ASSERT_TRUE(started) << d.tail();
    const std::string root_tmux = started->str("root_tmux").value_or("");
    EXPECT_NE(root_tmux.find(b + "=-L " + b_server.socket_name()), std::string::npos) << root_tmux;
    ASSERT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(b_lock))) << d.tail();
    ASSERT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(a_lock))) << d.tail();

    const std::size_t mark = d.event_count();
    b_server.kill_session("one"); // B's last session: B's server exits too
    auto removed = d.wait_for_event("lock.removed", about_lock(b_lock), mark, 10s);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "tmux") << removed->dump();
    EXPECT_FALSE(test::exists(b_lock));
    EXPECT_TRUE(test::exists(a_lock)) << "A's own %0 still lives";
    EXPECT_TRUE(d.find_events("lock.removed", about_lock(a_lock)).empty());

    // A's server becomes unreachable (its socket replaced by one that hangs): a finding keyed
    // by A's server, and A's lock kept.
    const std::size_t before_outage = d.event_count();
    a_server.kill_server();
    const std::string a_socket = a_server.socket_path();
    (void)::unlink(a_socket.c_str());
    HangingListener hanging(a_socket);
    d.send_signal(SIGUSR1); // a full pass now
    auto unreachable = d.wait_for_event("tmux.unreachable", nullptr, before_outage, 15s);
    ASSERT_TRUE(unreachable) << d.tail();
    EXPECT_EQ(unreachable->str("tmux_server"), "-L " + a_server.socket_name())
        << unreachable->dump();
    EXPECT_EQ(unreachable->str("roots"), a);
    EXPECT_TRUE(test::exists(a_lock));
}

// A server restarted on the same socket numbers its panes from %0 again: its %1 is not the %1
// that held a lock. The re-poll, which frees a held lock once its pane is no longer listed, must
// notice that another server answers, or the lock waits for the next full pass. The restart is
// made without a moment of "no server" the re-poll could catch: the new server is started on a
// socket of its own, which is then renamed over the old one.
TEST_F(TmuxServersE2E, TheRepollJudgesAgainTheLocksOfARestartedServer) {
    test::TmuxServerFixture tmux;
    tmux.new_session("one");
    tmux.new_session("two");
    const std::string pane = tmux.pane_of("two");
    const std::string old_pid =
        test::run_command("tmux -L '" + tmux.socket_name() + "' display -p -t two '#{pid}'").out;
    const std::string a = m_dir + "/a";
    const std::string lock = put_pane_lock(a, "w", pane);
    // No launcher slack: a server started after the lock was written is not its holder.
    const std::string config =
        put_config(R"({"log_format": "json", "log_level": "debug", "full_pass_interval": "1h",)"
                   R"( "tmux_created_slack": "0s", "roots": [{"path": ")" +
                   a + R"(", "tmux_socket": ")" + tmux.socket_name() + R"("}]})");
    DaemonSpec spec;
    spec.args = {"--config", config};
    m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
    DaemonProcess& d = *m_daemon;
    ASSERT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(lock))) << d.tail();

    // tmux's start_time is whole seconds: the new server must start in a later second.
    std::this_thread::sleep_for(1200ms);
    const std::string fresh = m_dir + "/fresh.sock";
    ASSERT_EQ(test::run_command("tmux -S '" + fresh +
                                "' -f /dev/null new-session -d -s one 'sleep 100000' \\; "
                                "new-session -d -s two 'sleep 100000'")
                  .status,
              0);
    ASSERT_EQ(test::run_command("tmux -S '" + fresh + "' list-panes -t two -F '#{pane_id}'").out,
              pane + "\n")
        << "the new server reuses the pane id";
    const std::size_t mark = d.event_count();
    ASSERT_EQ(::rename(fresh.c_str(), tmux.socket_path().c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(static_cast<pid_t>(std::stol(old_pid)), SIGTERM), 0);

    auto removed = d.wait_for_event("lock.removed", about_lock(lock), mark, 10s);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "tmux") << removed->dump();
    EXPECT_NE(removed->str("reason").value_or("").find("tmux server was created at"),
              std::string::npos)
        << removed->dump();
    EXPECT_FALSE(test::exists(lock));
    // The premise: the new server still answers on the socket, and still lists the pane.
    EXPECT_EQ(
        test::run_command("tmux -L '" + tmux.socket_name() + "' list-panes -t two -F '#{pane_id}'")
            .out,
        pane + "\n");
}

} // namespace
} // namespace agentlock::e2e
