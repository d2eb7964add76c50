// Identity over time and dead panes against real tmux servers on private sockets, in gastown's
// pattern: the lock's PID (`gt prime`) is dead, session_id is the agent's pane ($TMUX_PANE), and
// the lock lives by that pane. Each lock goes through run_pass (which removes what is stale) and
// check_worker, with the real process and tmux probes.
#include "test_support.hpp"

#include <agentlock/pass.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

// A private tmux server that also removes the socket file an ended server leaves behind.
class TmuxServerFixture : public test::TmuxServerFixture {
public:
    ~TmuxServerFixture() {
        kill_server();
        (void)::unlink(socket_path().c_str()); // ENOENT: nothing was left behind
    }
};

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

// The real clock plus `offset`, as a lock's acquired_at.
Timestamp now_plus(std::chrono::milliseconds offset) {
    return std::chrono::time_point_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now()) +
           offset;
}

class TmuxIdentityTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_host = read_host_facts();
        m_options.roots = {m_dir.sub("root")};
    }

    std::string worker(const std::string& name) const { return m_dir.sub("root/" + name); }
    std::string lock_path(const std::string& name) const {
        return worker(name) + "/.runtime/agent.lock";
    }

    // A Go lock (no start ticks, no boot id) whose owner is dead and whose session is `session`.
    void put_go(const std::string& name, const std::string& session, Timestamp acquired_at) {
        test::write_file(lock_path(name),
                         test::go_lock_json(test::dead_pid(), format_rfc3339(acquired_at), session,
                                            m_host.hostname));
    }

    // Our writer's lock recording `server`'s socket and PID, as an agent inside it writes.
    void put_ours(const std::string& name, const std::string& session, Timestamp acquired_at,
                  const std::string& socket, std::int64_t server_pid) {
        LockInfo info;
        info.pid = test::dead_pid();
        info.acquired_at = acquired_at;
        info.session_id = session;
        info.hostname = m_host.hostname;
        if (!m_host.boot_id.empty()) {
            info.boot_id = m_host.boot_id;
        }
        info.tmux_socket = socket;
        info.tmux_server_pid = server_pid;
        test::write_file(lock_path(name), serialize_lock(info));
    }

    // One pass against `server` (the configured one); the record of worker `name`.
    LockRecord pass(TmuxServer server, const std::string& name) {
        SystemTmuxProbe tmux(std::move(server));
        PassReport report = run_pass(m_options, *m_processes, tmux, m_host);
        for (auto& rec : report.locks) {
            if (rec.worker == worker(name)) {
                return rec;
            }
        }
        ADD_FAILURE() << "no lock for " << name;
        return {};
    }
    LockRecord pass(const TmuxServerFixture& server, const std::string& name) {
        return pass(TmuxServer{server.socket_name(), ""}, name);
    }

    // check_worker's judgement of worker `name`, which must agree with the pass's.
    LockRecord check(const TmuxServerFixture& server, const std::string& name) {
        SystemTmuxProbe tmux(TmuxServer{server.socket_name(), ""});
        WorkerCheck c = check_worker(worker(name), m_options, *m_processes, tmux, m_host);
        EXPECT_EQ(c.state, WorkerCheck::State::found) << c.error;
        return c.record;
    }

    static std::int64_t server_pid(TmuxServerFixture& server) {
        return std::stoll(trimmed(server.tmux("display-message -p '#{pid}'").out));
    }

    // Waits until the wall clock, truncated to tmux's whole seconds, is past `t`.
    static void wait_past(Timestamp t) {
        ASSERT_TRUE(test::wait_until(
            [t] {
                return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) >
                       t;
            },
            10s));
    }

    TempDir m_dir;
    PassOptions m_options;
    HostFacts m_host;
    std::unique_ptr<ProcessProbe> m_processes = std::make_unique<SystemProcessProbe>();
};

// tmux numbers panes and sessions from %0 and $0 again after a restart, and gastown starts the
// same town's server on the same socket: the new server's %0 and $0 are not the lock's.
TEST_F(TmuxIdentityTest, PaneAndSessionIdsReusedAfterAServerRestartDoNotHold) {
    m_options.tmux_created_slack = 1s;
    TmuxServerFixture server;
    const std::string session_id = server.new_session("gt-w01");
    const std::string pane = server.pane_of("gt-w01");
    const std::int64_t first_pid = server_pid(server);
    const Timestamp acquired = now_plus(0ms);
    put_go("by-pane", pane, acquired);
    put_go("by-session-id", session_id, acquired);
    for (const char* name : {"by-pane", "by-session-id"}) {
        const LockRecord rec = pass(server, name);
        EXPECT_EQ(rec.judgement.verdict, Verdict::held_by_session) << rec.judgement.reason;
    }

    server.kill_server();
    wait_past(acquired + m_options.tmux_created_slack);
    ASSERT_EQ(server.new_session("gt-w01"), session_id) << "tmux did not reuse the session id";
    ASSERT_EQ(server.pane_of("gt-w01"), pane) << "tmux did not reuse the pane id";
    ASSERT_NE(server_pid(server), first_pid);

    // The event-driven re-check and the full pass judge alike.
    const LockRecord checked = check(server, "by-pane");
    EXPECT_EQ(checked.judgement.verdict, Verdict::stale) << checked.judgement.reason;
    EXPECT_EQ(checked.action, LockAction::removed) << checked.detail;
    const LockRecord rec = pass(server, "by-session-id");
    EXPECT_EQ(rec.judgement.verdict, Verdict::stale) << rec.judgement.reason;
    EXPECT_EQ(rec.action, LockAction::removed) << rec.detail;
    for (const LockRecord* r : {&checked, &rec}) {
        EXPECT_NE(r->judgement.reason.find("not the one that took it"), std::string::npos)
            << r->judgement.reason;
    }
    EXPECT_NE(checked.judgement.reason.find("tmux server was created at"), std::string::npos)
        << checked.judgement.reason;
    EXPECT_FALSE(test::exists(lock_path("by-pane")));
    EXPECT_FALSE(test::exists(lock_path("by-session-id")));
}

// gastown recreates a session under the same name on the same server.
TEST_F(TmuxIdentityTest, ASessionRecreatedUnderTheSameNameDoesNotHold) {
    m_options.tmux_created_slack = 1s;
    TmuxServerFixture server;
    server.new_session("keeper"); // the server outlives gt-w01
    server.new_session("gt-w01");
    const std::int64_t pid = server_pid(server);
    const Timestamp acquired = now_plus(0ms);
    put_go("w01", "gt-w01", acquired);
    EXPECT_EQ(check(server, "w01").judgement.verdict, Verdict::held_by_session);

    server.kill_session("gt-w01");
    wait_past(acquired + m_options.tmux_created_slack);
    server.new_session("gt-w01");
    ASSERT_EQ(server_pid(server), pid) << "the same server throughout";
    const LockRecord rec = pass(server, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::stale) << rec.judgement.reason;
    EXPECT_NE(rec.judgement.reason.find("session gt-w01 ($"), std::string::npos)
        << rec.judgement.reason;
    EXPECT_NE(rec.judgement.reason.find("was created at"), std::string::npos)
        << rec.judgement.reason;
    EXPECT_EQ(rec.action, LockAction::removed);
}

// A launcher that writes the lock and then creates the session is covered by the slack (default
// one minute); a session created long after the lock is not its holder.
TEST_F(TmuxIdentityTest, TheSlackBothWays) {
    TmuxServerFixture server;
    server.new_session("gt-w01");
    const std::string pane = server.pane_of("gt-w01");
    put_go("just-before", pane, now_plus(-5s));
    put_go("by-name-just-before", "gt-w01", now_plus(-5s));
    put_go("long-before", pane, now_plus(-10min));
    put_go("by-name-long-before", "gt-w01", now_plus(-10min));
    for (const char* name : {"just-before", "by-name-just-before"}) {
        const LockRecord rec = pass(server, name);
        EXPECT_EQ(rec.judgement.verdict, Verdict::held_by_session)
            << name << ": " << rec.judgement.reason;
        EXPECT_TRUE(test::exists(lock_path(name)));
    }
    for (const char* name : {"long-before", "by-name-long-before"}) {
        EXPECT_FALSE(test::exists(lock_path(name))) << name << " was kept";
    }
    // The slack is the config's: with ten minutes and a bit, the older locks hold too.
    m_options.tmux_created_slack = 11min;
    put_go("long-before", pane, now_plus(-10min));
    EXPECT_EQ(pass(server, "long-before").judgement.verdict, Verdict::held_by_session);
}

// A pane kept by remain-on-exit after its process exited no longer holds; while it ran, it did.
TEST_F(TmuxIdentityTest, ADeadPaneDoesNotHold) {
    TmuxServerFixture server;
    server.new_session("keeper");
    ASSERT_EQ(server.tmux("set-option -g remain-on-exit on").status, 0);
    server.new_session("gt-w01");
    const std::string pane = server.pane_of("gt-w01");
    const pid_t agent = server.pane_pid("gt-w01");
    put_go("w01", pane, now_plus(0ms));
    EXPECT_EQ(pass(server, "w01").judgement.verdict, Verdict::held_by_session);

    ASSERT_EQ(::kill(agent, SIGKILL), 0);
    ASSERT_TRUE(test::wait_until([&] {
        return trimmed(server.tmux("display-message -p -t " + pane + " '#{pane_dead}'").out) == "1";
    }));
    ASSERT_TRUE(server.tmux("list-panes -a -F '#{pane_id}'").out.find(pane) != std::string::npos)
        << "the dead pane is still listed";
    const LockRecord rec = pass(server, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::stale) << rec.judgement.reason;
    EXPECT_NE(rec.judgement.reason.find("pane " + pane + " is dead"), std::string::npos)
        << rec.judgement.reason;
    EXPECT_EQ(rec.action, LockAction::removed);
}

// A session named in the lock holds it while any of its panes runs.
TEST_F(TmuxIdentityTest, ASessionWhosePanesAreAllDeadDoesNotHold) {
    TmuxServerFixture server;
    server.new_session("keeper");
    ASSERT_EQ(server.tmux("set-option -g remain-on-exit on").status, 0);
    server.new_session("gt-w01");
    ASSERT_EQ(server.tmux("split-window -d -t gt-w01 'sleep 100000'").status, 0);
    std::vector<pid_t> pids;
    std::istringstream listed(server.tmux("list-panes -t gt-w01 -F '#{pane_pid}'").out);
    for (std::string line; std::getline(listed, line);) {
        pids.push_back(static_cast<pid_t>(std::stol(line)));
    }
    ASSERT_EQ(pids.size(), 2u);
    put_go("w01", "gt-w01", now_plus(0ms));
    const auto dead_panes = [&] {
        const std::string out = server.tmux("list-panes -t gt-w01 -F '#{pane_dead}'").out;
        return static_cast<std::size_t>(std::count(out.begin(), out.end(), '1'));
    };

    ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
    ASSERT_TRUE(test::wait_until([&] { return dead_panes() == 1; }));
    EXPECT_EQ(pass(server, "w01").judgement.verdict, Verdict::held_by_session);

    ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
    ASSERT_TRUE(test::wait_until([&] { return dead_panes() == 2; }));
    const LockRecord rec = pass(server, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::stale) << rec.judgement.reason;
    EXPECT_NE(rec.judgement.reason.find("every pane of session gt-w01"), std::string::npos)
        << rec.judgement.reason;
    EXPECT_EQ(rec.action, LockAction::removed);
}

// After a reboot the socket directory is gone and tmux reads unknown; a lock from before the boot
// is stale all the same. The process probe reads btime from a prepared /proc.
TEST_F(TmuxIdentityTest, ALockFromBeforeTheBootIsStaleWhateverTmuxSays) {
    const auto now_s = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    const auto prepare = [this](std::chrono::sys_seconds btime) {
        test::write_file(m_dir.sub("proc/stat"),
                         "cpu  1 2 3 4\nbtime " + std::to_string(btime.time_since_epoch().count()) +
                             "\nprocesses 12345\n");
        m_processes = std::make_unique<SystemProcessProbe>(m_dir.sub("proc"));
    };
    const TmuxServer gone{"", m_dir.sub("no-such-dir/socket")}; // tmux: unknown (ENOENT)
    put_go("w01", "%3", now_plus(-1h));

    // Booted two hours ago: written this boot; tmux unknown keeps it.
    prepare(now_s - 2h);
    LockRecord rec = pass(gone, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::unknown) << rec.judgement.reason;
    EXPECT_TRUE(test::exists(lock_path("w01")));

    // Booted a minute ago: the lock predates the boot by more than the margin.
    prepare(now_s - 1min);
    rec = pass(gone, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::stale) << rec.judgement.reason;
    EXPECT_NE(rec.judgement.reason.find("before this boot"), std::string::npos)
        << rec.judgement.reason;
    EXPECT_EQ(rec.action, LockAction::removed);

    // Within the margin of the boot: not concluded.
    put_go("w01", "%3", now_plus(-1h));
    prepare(now_s - 1h + k_boot_time_margin);
    EXPECT_EQ(pass(gone, "w01").judgement.verdict, Verdict::unknown);
}

// Our writer records the agent's server from $TMUX: the pass asks that server, not the
// configured one, and once that server is gone its ids hold nothing, even where another server
// lists the same pane id.
TEST_F(TmuxIdentityTest, ALockRecordingItsServerIsJudgedByThatServer) {
    m_options.ask_tmux_server = [](const TmuxServer& s) { return SystemTmuxProbe(s).query(); };
    TmuxServerFixture town;
    TmuxServerFixture other; // configured, with its own %0
    town.new_session("gt-w01");
    other.new_session("unrelated");
    const std::string pane = town.pane_of("gt-w01");
    ASSERT_EQ(other.pane_of("unrelated"), pane) << "both servers number their first pane alike";
    const std::int64_t town_pid = server_pid(town);
    put_ours("w01", pane, now_plus(0ms), town.socket_path(), town_pid);

    LockRecord rec = pass(other, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::held_by_session) << rec.judgement.reason;

    // Without a way to ask it, another server's answer is no evidence either way.
    PassOptions saved = m_options;
    m_options.ask_tmux_server = nullptr;
    rec = pass(other, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::unknown) << rec.judgement.reason;
    m_options = saved;

    town.kill_server();
    ASSERT_TRUE(test::wait_until([&] { return ::kill(static_cast<pid_t>(town_pid), 0) != 0; }));
    rec = pass(other, "w01");
    EXPECT_EQ(rec.judgement.verdict, Verdict::stale) << rec.judgement.reason;
    EXPECT_NE(rec.judgement.reason.find("PID " + std::to_string(town_pid)), std::string::npos);
    EXPECT_NE(rec.judgement.reason.find("is gone"), std::string::npos) << rec.judgement.reason;
    EXPECT_EQ(rec.action, LockAction::removed);
}

// What tmux exports as $TMUX in a pane names that server, as parse_tmux_env reads it.
TEST_F(TmuxIdentityTest, TheTmuxVariableNamesTheServer) {
    TmuxServerFixture server;
    const std::string out = m_dir.sub("tmux-env");
    ASSERT_EQ(server.tmux("new-session -d -s env 'printf %s \"$TMUX\" > " + out + "; sleep 100000'")
                  .status,
              0);
    ASSERT_TRUE(
        test::wait_until([&] { return test::exists(out) && !test::read_file(out).empty(); }));
    const std::optional<TmuxEnv> env = parse_tmux_env(test::read_file(out));
    ASSERT_TRUE(env) << test::read_file(out);
    EXPECT_EQ(env->server_pid, server_pid(server));
    EXPECT_EQ(env->socket_path, trimmed(server.tmux("display-message -p '#{socket_path}'").out));
}

} // namespace
} // namespace agentlock
