#pragma once
// The tmux probe: one query per pass, three honest outcomes.

#include <agentlock/lock_file.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

enum class TmuxState : std::uint8_t {
    ok,        ///< the server answered; the sets below are complete
    no_server, ///< definitively no server running: there are no sessions
    unknown,   ///< anything else (permission, time-out, tmux missing): never a reason to remove
};

std::string_view to_string(TmuxState state); ///< "ok", "no-server", "unknown"

/// One listed session. tmux's times are whole seconds of the wall clock, truncated.
struct TmuxSession {
    std::string id;                   ///< "$N"
    std::string name;                 ///< e.g. "gt-rig-w01"
    std::optional<Timestamp> created; ///< session_created; unset when tmux did not say
    std::size_t panes = 0;            ///< its panes as listed (a linked window counts in each)
    std::size_t dead_panes = 0;       ///< of those, the ones with pane_dead 1
    std::size_t unread_panes = 0;     ///< of those, the ones whose pane_dead tmux did not say
};

/// One listed pane.
struct TmuxPane {
    std::string id;                  ///< "%N" ($TMUX_PANE)
    std::string session_id;          ///< "$N" of the first session it was listed in
    std::optional<std::int64_t> pid; ///< pane_pid: the first process run in the pane
    std::optional<bool> dead;        ///< pane_dead: its process exited (remain-on-exit kept it)
};

/// What the tmux server reported.
struct TmuxFacts {
    TmuxState state = TmuxState::unknown;
    std::string detail;                  ///< tmux's own words on failure, for logs
    std::set<std::string> session_names; ///< e.g. "gt-rig-w01"
    std::set<std::string> session_ids;   ///< "$N"
    std::set<std::string> pane_ids;      ///< "%N" ($TMUX_PANE)
    /// Every listed session by "$N" and pane by "%N", with what tells their age and state.
    std::map<std::string, TmuxSession, std::less<>> sessions;
    std::map<std::string, TmuxPane, std::less<>> panes;
    /// The server that answered: start_time and pid; unset when it did not say (or no server).
    std::optional<Timestamp> server_started;
    std::optional<std::int64_t> server_pid;
    /// The socket asked, when the probe knows it (-S), or the one tmux named as having no server.
    std::string socket_path;
    /// When the query began, by the wall clock: the answer describes the server at some moment
    /// after it. Unset for an answer not obtained by querying a server.
    std::optional<Timestamp> asked_at;
    /// The server asked, as describe_tmux_server names it ("-L NAME", "-S PATH", "default"), for
    /// logs; empty when the facts did not come from a probe.
    std::string server;
    /// The wall clock right after tmux answered (the real probe sets it). tmux read its own times
    /// (start_time, session_created) from the same clock before it answered, so a time later than
    /// this is not one tmux can have read.
    std::optional<Timestamp> listed_at;

    /// True when `session_id` names a listed session name, session id or pane id.
    /// Meaningful only when state is ok.
    bool has(std::string_view session_id) const;

    /// Like has(), but false for a pane whose process has exited and for a session whose listed
    /// panes all have: what a lock held by a session waits on. Meaningful only when state is ok.
    bool has_live(std::string_view session_id) const;
};

/// The processes whose exit may end the hold of `session_id` in `facts` (an ok answer): the
/// server's, and the recorded pane's, or every listed pane's of the recorded session (by "$N" or
/// by name), those tmux gave a pid for. Sorted, without repeats; empty when the answer is not ok.
/// Only a pane's first process is known: a child it started may outlive it, and a pane whose
/// process ignores SIGHUP outlives kill-session; neither ends with one of these.
std::vector<std::int64_t> tmux_hold_pids(const TmuxFacts& facts, std::string_view session_id);

/// Which tmux server to ask: -S path wins over -L name; both empty is tmux's default.
struct TmuxServer {
    std::string socket_name; ///< -L
    std::string socket_path; ///< -S
};

class TmuxProbe {
public:
    virtual ~TmuxProbe() = default;
    /// Lists every session and pane in one call.
    virtual TmuxFacts query() = 0;
};

/// The real probe: runs `tmux [-L|-S] list-panes -a -F ...` with a deadline.
class SystemTmuxProbe final : public TmuxProbe {
public:
    explicit SystemTmuxProbe(TmuxServer server,
                             std::chrono::milliseconds timeout = std::chrono::seconds(3),
                             std::string tmux_binary = "tmux");
    TmuxFacts query() override;

private:
    TmuxServer m_server;
    std::chrono::milliseconds m_timeout;
    std::string m_binary;
};

/// The `-F` format the probe lists panes with: session_id, pane_id, pane_pid, pane_dead,
/// session_created, start_time, pid and session_name, tab-separated, the name last.
std::string_view tmux_listing_format();

/// Parses list-panes output in tmux_listing_format(). A field tmux left empty (a variable it does
/// not know) leaves its fact unset; anything else malformed makes the whole listing unknown.
TmuxFacts parse_tmux_listing(std::string_view output);

} // namespace agentlock
