// A tmux server that lies, under the real agentlockd. Two real tmux servers serve two roots (each
// root names its server by socket path); a stand-in `tmux`, first in the daemon's PATH, runs the
// real tmux for every socket but one, whose listing it rewrites: times in the future, truncated
// and malformed lines, one pane listed twice with two states, a pane_pid that is not a number, a
// server PID that is not the socket's, and listings that say there is nothing while the real
// server lists the agents' panes. Every lock there belongs to a live agent (gastown's pattern: the
// lock's PID, `gt prime`, has exited; the pane lives), so none may be removed; each kept lock is
// logged naming the server and why. The honest server's root is judged as if the liar were not
// there: its live pane's lock held, its gone pane's lock removed.

#include "e2e_support.hpp"
#include "test_support.hpp"

#include <agentlock/lock_file.hpp>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

namespace agentlock::hostile {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using e2e::about_lock;
using e2e::DaemonProcess;
using e2e::DaemonSpec;
using e2e::LogEvent;
using e2e::member;
using e2e::str_or;
using test::exists;
using test::TmuxServerFixture;
using test::write_file;

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

// The tmux the tests (and the stand-in) call as the real one: the first in our own PATH.
std::string real_tmux() {
    const std::string found = trimmed(test::run_command("command -v tmux").out);
    return found.empty() ? "/usr/bin/tmux" : found;
}

// The server PID of a fixture's server, as tmux prints #{pid}.
long long server_pid_of(TmuxServerFixture& server, const std::string& session) {
    const std::string out =
        trimmed(server.tmux("display-message -p -t '" + session + "' '#{pid}'").out);
    if (out.empty()) {
        throw std::runtime_error("no #{pid} from " + server.socket_name());
    }
    return std::stoll(out);
}

// What the liar says, as a shell snippet run by the stand-in with the probe's arguments in "$@"
// ($1 -S, $2 the socket, then list-panes -a -F FORMAT) and the real tmux in $real. It ends with
// exit; an empty snippet lets the real tmux answer. Fields of a line (tmux_listing_format()):
// 1 session_id, 2 pane_id, 3 pane_pid, 4 pane_dead, 5 session_created, 6 start_time, 7 pid,
// 8 session_name.
std::string rewrite(const std::string& awk_program) {
    return "\"$real\" \"$@\" | awk -F '\t' -v OFS='\t' '" + awk_program + "'\nexit 0\n";
}

const std::string k_a_day_later = "86400";

class LyingTmux : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = e2e::real_path(m_tmp.path());
        m_real_tmux = real_tmux();
        m_lie = m_dir + "/lie.sh";
        write_file(m_lie, "");
        // The stand-in: a lie only for the liar's socket, which the probe names with -S first.
        const std::string bin = m_dir + "/bin";
        write_file(bin + "/tmux",
                   "#!/bin/sh\n"
                   "# tmux as agentlockd finds it: the real one, but for one socket\n"
                   "real='" +
                       m_real_tmux +
                       "'\n"
                       "if [ \"$1\" = -S ] && [ \"$2\" = '" +
                       m_liar.socket_path() +
                       "' ]; then\n"
                       "    . '" +
                       m_lie +
                       "'\n"
                       "fi\n"
                       "exec \"$real\" \"$@\"\n");
        if (::chmod((bin + "/tmux").c_str(), 0755) != 0) {
            throw std::runtime_error(std::string("chmod: ") + std::strerror(errno));
        }
        const char* path = std::getenv("PATH");
        m_path_env = "PATH=" + bin + ":" + (path != nullptr ? path : "/usr/bin:/bin");

        // The honest server: a live agent's pane, and a pane that has gone.
        m_honest.new_session("a-live");
        m_honest.new_session("a-gone");
        m_gone_pane = m_honest.pane_of("a-gone");
        m_honest.kill_session("a-gone");
        // The liar's real server: two live agents' panes.
        m_liar.new_session("b-live");
        m_liar.new_session("b-ours");
        m_liar_pid = server_pid_of(m_liar, "b-live");
        m_honest_pid = server_pid_of(m_honest, "a-live");

        m_root_a = m_dir + "/honest";
        m_root_b = m_dir + "/lied-about";
        e2e::WorkerRoot a(m_root_a);
        e2e::WorkerRoot b(m_root_b);
        m_a_live = a.put_lock("w-live", pane_lock(m_honest.pane_of("a-live")));
        m_a_gone = a.put_lock("w-gone", pane_lock(m_gone_pane));
        // Gastown's lock, by pane and (as some record it) by session name.
        m_b_pane = b.put_lock("w-pane", pane_lock(m_liar.pane_of("b-live")));
        m_b_name = b.put_lock("w-name", pane_lock("b-live"));
        // Our writer's lock: it records the agent's server (socket and PID) from $TMUX.
        LockInfo ours;
        ours.pid = test::dead_pid();
        ours.acquired_at = std::chrono::time_point_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now());
        ours.session_id = m_liar.pane_of("b-ours");
        ours.hostname = test::local_hostname();
        ours.tmux_socket = m_liar.socket_path();
        ours.tmux_server_pid = m_liar_pid;
        m_b_ours = b.put_lock("w-ours", serialize_lock(ours));

        m_config = m_dir + "/config.json";
        write_file(m_config, R"({"log_format": "json", "log_level": "debug", "tmux_timeout": "3s",)"
                             R"( "roots": [{"path": ")" +
                                 m_root_a + R"(", "tmux_socket_path": ")" + m_honest.socket_path() +
                                 R"("}, {"path": ")" + m_root_b + R"(", "tmux_socket_path": ")" +
                                 m_liar.socket_path() + R"("}]})");
    }

    void TearDown() override { e2e::tear_down_daemon(m_daemon, HasFailure()); }

    // A lock whose PID (gt prime's) has exited, held by `session` (a pane id or a name).
    static std::string pane_lock(const std::string& session) {
        return test::go_lock_json(test::dead_pid(), e2e::rfc3339_now(), session,
                                  test::local_hostname());
    }

    void lie(const std::string& snippet) const { write_file(m_lie, snippet); }

    std::string liar() const { return "-S " + m_liar.socket_path(); }
    std::string honest() const { return "-S " + m_honest.socket_path(); }

    DaemonSpec spec(std::vector<std::string> args) const {
        DaemonSpec s;
        s.args = std::move(args);
        s.extra_env = {m_path_env};
        return s;
    }

    struct Once {
        json::object doc;
        std::vector<LogEvent> events;
        std::string err;
    };

    // agentlockd --once --json with the stand-in first in its PATH. The honest root's lock of a
    // gone pane is put back first, for each run to remove.
    Once once() {
        if (!exists(m_a_gone)) {
            write_file(m_a_gone, pane_lock(m_gone_pane));
        }
        DaemonProcess d(m_dir, spec({"--once", "--json", "--config", m_config}));
        const auto status = d.wait_exit(30s);
        EXPECT_TRUE(status && status->exited && status->code == 0)
            << (status ? status->describe() : "still running") << "\n"
            << d.tail();
        Once r;
        auto v = e2e::parse_json(d.stdout_text());
        EXPECT_TRUE(v && v->is_object()) << d.tail();
        if (v && v->is_object()) {
            r.doc = v->as_object();
        }
        r.events = d.events();
        r.err = d.stderr_text();
        return r;
    }

    static std::string verdict_of(const Once& r, const std::string& lock) {
        auto e = e2e::lock_entry(r.doc, lock);
        return e ? str_or(*e, "verdict") : "(not reported)";
    }
    static std::string reason_of(const Once& r, const std::string& lock) {
        auto e = e2e::lock_entry(r.doc, lock);
        return e ? str_or(*e, "reason") : "(not reported)";
    }

    // The finding logged for a kept lock: its event names the verdict, its fields the server it
    // was judged against and the reason.
    static std::optional<LogEvent> finding_of(const std::vector<LogEvent>& events,
                                              const std::string& lock) {
        for (const auto& e : events) {
            if (e.str("lock_path") == lock && e.name().rfind("lock.", 0) == 0 &&
                e.name() != "lock.removed") {
                return e;
            }
        }
        return std::nullopt;
    }

    // The lock is still there, its verdict is `verdict`, its reason says `why`, and its log line
    // names the liar and says why too.
    void expect_kept(const Once& r, const std::string& lock, const std::string& verdict,
                     const std::string& why) const {
        SCOPED_TRACE(lock);
        EXPECT_TRUE(exists(lock)) << "a live agent's lock was removed\n" << r.err;
        EXPECT_EQ(verdict_of(r, lock), verdict) << reason_of(r, lock);
        EXPECT_NE(reason_of(r, lock).find(why), std::string::npos) << reason_of(r, lock);
        const auto line = finding_of(r.events, lock);
        ASSERT_TRUE(line) << "no finding logged\n" << r.err;
        EXPECT_EQ(line->name(),
                  "lock." + std::string(verdict == "held-by-session" ? "held_by_session" : verdict))
            << line->dump();
        EXPECT_EQ(line->str("tmux_server"), liar()) << line->dump();
        EXPECT_NE(line->str("reason").value_or("").find(why), std::string::npos) << line->dump();
        EXPECT_TRUE(r.events.end() ==
                    std::find_if(r.events.begin(), r.events.end(), [&](const LogEvent& e) {
                        return e.name() == "lock.removed" && e.str("lock_path") == lock;
                    }));
    }

    // A lie that makes the liar's whole answer unknown: every lock of its root is kept as
    // unknown, and the server is logged unreachable with tmux's (or the probe's) words.
    void expect_all_unknown(const Once& r, const std::string& detail) const {
        for (const auto& lock : {m_b_pane, m_b_name, m_b_ours}) {
            expect_kept(r, lock, "unknown", "tmux state unknown");
            const auto line = finding_of(r.events, lock);
            if (line) {
                EXPECT_NE(line->str("tmux_detail").value_or("").find(detail), std::string::npos)
                    << line->dump();
            }
        }
        bool unreachable = false;
        for (const auto& e : r.events) {
            if (e.name() == "tmux.unreachable" && e.str("tmux_server") == liar()) {
                unreachable = true;
                EXPECT_EQ(e.str("roots"), m_root_b) << e.dump();
                EXPECT_NE(e.str("tmux_detail").value_or("").find(detail), std::string::npos)
                    << e.dump();
            }
        }
        EXPECT_TRUE(unreachable) << r.err;
    }

    // The honest root is judged as without the liar: its live pane holds, its gone pane's lock
    // is removed.
    void expect_honest_root_unaffected(const Once& r) const {
        EXPECT_EQ(verdict_of(r, m_a_live), "held-by-session") << reason_of(r, m_a_live);
        EXPECT_TRUE(exists(m_a_live));
        EXPECT_EQ(verdict_of(r, m_a_gone), "stale") << reason_of(r, m_a_gone);
        EXPECT_FALSE(exists(m_a_gone));
        const auto held = finding_of(r.events, m_a_live);
        ASSERT_TRUE(held) << r.err;
        EXPECT_EQ(held->str("tmux_server"), honest()) << held->dump();
    }

    test::TempDir m_tmp;
    std::string m_dir;
    std::string m_real_tmux;
    std::string m_lie;
    std::string m_path_env;
    TmuxServerFixture m_honest;
    TmuxServerFixture m_liar;
    long long m_liar_pid = 0;
    long long m_honest_pid = 0;
    std::string m_gone_pane;
    std::string m_root_a, m_root_b;
    std::string m_a_live, m_a_gone, m_b_pane, m_b_name, m_b_ours;
    std::string m_config;
    std::unique_ptr<DaemonProcess> m_daemon;
};

// The stand-in itself: without a lie it is the real tmux, and the liar's locks are held.
TEST_F(LyingTmux, WithoutALieEveryLiveAgentsLockIsHeld) {
    const Once r = once();
    expect_honest_root_unaffected(r);
    expect_kept(r, m_b_pane, "held-by-session", "still exists");
    expect_kept(r, m_b_name, "held-by-session", "still exists");
    expect_kept(r, m_b_ours, "held-by-session", "still exists");
}

// tmux's times are read from the clock before tmux answers: a server start or a session creation
// later than the moment the answer was read is not a time at all. Taken at its word, a server
// "started" a day from now is newer than every lock, and its panes would hold none of them.
TEST_F(LyingTmux, TimesInTheFutureAreNotBelievedAndKeepTheLocks) {
    lie(rewrite("{ $6 = sprintf(\"%d\", $6 + " + k_a_day_later + "); print }"));
    Once r = once();
    expect_honest_root_unaffected(r);
    expect_kept(r, m_b_pane, "unknown", "later than tmux was asked");
    expect_kept(r, m_b_ours, "unknown", "later than tmux was asked");
    EXPECT_NE(reason_of(r, m_b_pane).find("start time"), std::string::npos)
        << reason_of(r, m_b_pane);
    // A session's own creation time, still true, decides a lock that records its name.
    expect_kept(r, m_b_name, "held-by-session", "still exists");

    lie(rewrite("{ $5 = sprintf(\"%d\", $5 + " + k_a_day_later + "); print }"));
    r = once();
    expect_kept(r, m_b_name, "unknown", "later than tmux was asked");
    EXPECT_NE(reason_of(r, m_b_name).find("session b-live"), std::string::npos)
        << reason_of(r, m_b_name);
    // A pane is as old as its server, whose start time is still true.
    expect_kept(r, m_b_pane, "held-by-session", "still exists");
    expect_kept(r, m_b_ours, "held-by-session", "still exists");

    lie(rewrite("{ $5 = sprintf(\"%d\", $5 + " + k_a_day_later + "); $6 = sprintf(\"%d\", $6 + " +
                k_a_day_later + "); print }"));
    r = once();
    for (const auto& lock : {m_b_pane, m_b_name, m_b_ours}) {
        expect_kept(r, lock, "unknown", "later than tmux was asked");
    }
}

// A listing that cannot be read completely is not taken for a complete one.
TEST_F(LyingTmux, TruncatedAndMalformedListingsKeepTheLocks) {
    const std::vector<std::pair<std::string, std::string>> lies = {
        {"cut to five fields", "\"$real\" \"$@\" | cut -f1-5\nexit 0\n"},
        {"cut off mid-line", "\"$real\" \"$@\" | head -c 24\nexit 0\n"},
        {"a line of something else first", "echo 'sessions: 2'\n\"$real\" \"$@\"\nexit 0\n"},
        {"the session id dropped", rewrite("{ $1 = \"\"; print }")},
    };
    for (const auto& [what, snippet] : lies) {
        SCOPED_TRACE(what);
        lie(snippet);
        const Once r = once();
        expect_honest_root_unaffected(r);
        expect_all_unknown(r, "unexpected tmux output");
    }
}

// One pane listed in two sessions: what a linked window looks like, and then both lines say the
// same. A listing that says a pane is alive in one session and dead in the other contradicts
// itself: nothing it says decides, rather than whichever line came first.
TEST_F(LyingTmux, APaneListedTwiceWithTwoStatesKeepsTheLocks) {
    lie(rewrite("{ line = $0; $1 = \"$9\" NR; $4 = \"1\"; $8 = \"ghost\" NR; print; print line }"));
    Once r = once();
    expect_honest_root_unaffected(r);
    expect_all_unknown(r, "one pane id with two pids or states");

    lie(rewrite(
        "{ line = $0; $1 = \"$9\" NR; $3 = $3 + 1; $8 = \"ghost\" NR; print; print line }"));
    r = once();
    expect_all_unknown(r, "one pane id with two pids or states");

    lie(rewrite("{ print; $1 = \"$9\" NR; $8 = \"linked\" NR; print }"));
    r = once();
    expect_kept(r, m_b_pane, "held-by-session", "still exists");
    expect_kept(r, m_b_name, "held-by-session", "still exists");
    expect_kept(r, m_b_ours, "held-by-session", "still exists");
}

TEST_F(LyingTmux, APanePidThatIsNotANumberKeepsTheLocks) {
    lie(rewrite("{ $3 = $3 \"x\"; print }"));
    const Once r = once();
    expect_honest_root_unaffected(r);
    expect_all_unknown(r, "pane_pid");
}

// A server PID that is not the socket's (the honest server's, or a process that has exited). A Go
// lock names no server, and the panes listed are alive: held, whoever claims to serve them. Our
// writer's lock names its server: another PID's answer is not its answer.
TEST_F(LyingTmux, AServerPidThatIsNotTheSocketsKeepsTheLocks) {
    for (const long long pid : {m_honest_pid, static_cast<long long>(test::dead_pid())}) {
        SCOPED_TRACE(pid);
        lie(rewrite("{ $7 = \"" + std::to_string(pid) + "\"; print }"));
        const Once r = once();
        expect_honest_root_unaffected(r);
        expect_kept(r, m_b_pane, "held-by-session", "still exists");
        expect_kept(r, m_b_name, "held-by-session", "still exists");
        expect_kept(r, m_b_ours, "unknown", "was not the server asked");
        EXPECT_NE(reason_of(r, m_b_ours).find("PID " + std::to_string(pid)), std::string::npos)
            << reason_of(r, m_b_ours);
    }
}

// Nothing listed, exit 0: tmux never answers so (a server without sessions says "no current
// target"), so it is unknown. "no server running" on a socket that accepts connections is a
// server's socket all the same: unknown too.
TEST_F(LyingTmux, NothingListedOrNoServerClaimedWhileItServesKeepsTheLocks) {
    lie("exit 0\n");
    Once r = once();
    expect_honest_root_unaffected(r);
    expect_all_unknown(r, "tmux listed nothing");

    lie("echo \"no server running on $2\" >&2\nexit 1\n");
    r = once();
    expect_all_unknown(r, "accepts connections");
}

// "no current target" is tmux's own answer for a server without sessions: a complete, empty
// listing, and it names no server PID.
//
// Our writer's lock records its server's PID, and that process is alive (it is the real server,
// which lists the pane). The decision: an answer that names no server cannot be matched with the
// recorded one, which was not seen dead, so it decides nothing: unknown, kept, until the server
// exits (its PID dead: stale) or lists something (its PID named: judged by what it lists). The
// cost is that our locks on a server that really has no sessions left (exit-empty off) are kept
// while it runs.
//
// A Go lock records no server: a server that says, in tmux's own words, that it has no sessions
// is not told apart from one that has none, so the lock of its pane is removed. Pinned here as
// the limit of what a cleaner can check without a second source of truth.
TEST_F(LyingTmux, NoSessionsClaimedKeepsALockThatRecordsItsLiveServer) {
    lie("echo 'no current target' >&2\nexit 1\n");
    const Once r = once();
    expect_honest_root_unaffected(r);
    expect_kept(r, m_b_ours, "unknown", "names no server PID");
    EXPECT_NE(reason_of(r, m_b_ours).find("PID " + std::to_string(m_liar_pid)), std::string::npos)
        << reason_of(r, m_b_ours);
    EXPECT_EQ(verdict_of(r, m_b_pane), "stale") << reason_of(r, m_b_pane);
    EXPECT_EQ(verdict_of(r, m_b_name), "stale") << reason_of(r, m_b_name);
}

// The daemon: the liar's lies come and go while it runs, and the honest server's root is served
// throughout (its pane's end frees its lock through the tmux re-poll). Once the liar tells the
// truth again, its locks are held, and freed when their panes really end.
TEST_F(LyingTmux, TheDaemonKeepsTheLiarsLocksAndServesTheHonestRoot) {
    m_daemon = std::make_unique<DaemonProcess>(m_dir, spec({"--config", m_config}));
    DaemonProcess& d = *m_daemon;
    for (const auto& lock : {m_a_live, m_b_pane, m_b_name, m_b_ours}) {
        ASSERT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(lock))) << d.tail();
    }
    ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(m_a_gone))) << d.tail();

    // A server "started" a day from now: the next pass keeps its panes' locks as unknown.
    std::size_t mark = d.event_count();
    lie(rewrite("{ $6 = sprintf(\"%d\", $6 + " + k_a_day_later + "); print }"));
    d.send_signal(SIGUSR1);
    for (const auto& lock : {m_b_pane, m_b_ours}) {
        auto unknown = d.wait_for_event("lock.unknown", about_lock(lock), mark);
        ASSERT_TRUE(unknown) << d.tail();
        EXPECT_EQ(unknown->str("tmux_server"), liar()) << unknown->dump();
        EXPECT_NE(unknown->str("reason").value_or("").find("later than tmux was asked"),
                  std::string::npos)
            << unknown->dump();
    }
    ASSERT_TRUE(d.wait_for_event("pass.completed", nullptr, mark)) << d.tail();

    // Meanwhile the honest server's pane ends: its lock goes at once, by the re-poll.
    mark = d.event_count();
    m_honest.tmux("kill-pane -t '" + m_honest.pane_of("a-live") + "'");
    auto removed = d.wait_for_event("lock.removed", about_lock(m_a_live), mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "tmux") << removed->dump();
    EXPECT_EQ(removed->str("tmux_server"), honest()) << removed->dump();

    // The liar now says it has no server at all, while its server listens.
    mark = d.event_count();
    lie("echo \"no server running on $2\" >&2\nexit 1\n");
    d.send_signal(SIGUSR1);
    auto unreachable = d.wait_for_event(
        "tmux.unreachable", [&](const LogEvent& e) { return e.str("tmux_server") == liar(); },
        mark);
    ASSERT_TRUE(unreachable) << d.tail();
    EXPECT_NE(unreachable->str("tmux_detail").value_or("").find("accepts connections"),
              std::string::npos)
        << unreachable->dump();
    ASSERT_TRUE(d.wait_for_event("pass.completed", nullptr, mark)) << d.tail();
    // A few re-polls and a pass later, nothing of the liar's root has been removed.
    std::this_thread::sleep_for(1s);
    d.send_signal(SIGUSR1);
    ASSERT_TRUE(d.wait_for_event("pass.completed", nullptr, d.event_count())) << d.tail();
    for (const auto& lock : {m_b_pane, m_b_name, m_b_ours}) {
        EXPECT_TRUE(exists(lock)) << lock;
        EXPECT_TRUE(d.find_events("lock.removed", about_lock(lock)).empty()) << lock;
    }

    // The truth again: held; then the liar's panes really end, and their locks go.
    mark = d.event_count();
    lie("");
    d.send_signal(SIGUSR1);
    ASSERT_TRUE(d.wait_for_event("tmux.recovered", nullptr, mark)) << d.tail();
    for (const auto& lock : {m_b_pane, m_b_name, m_b_ours}) {
        ASSERT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(lock), mark)) << d.tail();
    }
    mark = d.event_count();
    m_liar.kill_server();
    for (const auto& lock : {m_b_pane, m_b_name, m_b_ours}) {
        auto gone = d.wait_for_event("lock.removed", about_lock(lock), mark);
        ASSERT_TRUE(gone) << d.tail();
        EXPECT_EQ(gone->str("tmux_server"), liar()) << gone->dump();
        EXPECT_FALSE(exists(lock));
    }
}

} // namespace
} // namespace agentlock::hostile
