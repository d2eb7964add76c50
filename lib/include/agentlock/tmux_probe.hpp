#pragma once
// The tmux probe: one query per pass, three honest outcomes.

#include <chrono>
#include <set>
#include <string>
#include <string_view>

namespace agentlock {

enum class TmuxState {
    ok,        ///< the server answered; the sets below are complete
    no_server, ///< definitively no server running: there are no sessions
    unknown,   ///< anything else (permission, time-out, tmux missing): never a reason to remove
};

std::string_view to_string(TmuxState state); ///< "ok", "no-server", "unknown"

/// What the tmux server reported.
struct TmuxFacts {
    TmuxState state = TmuxState::unknown;
    std::string detail;                  ///< tmux's own words on failure, for logs
    std::set<std::string> session_names; ///< e.g. "gt-rig-w01"
    std::set<std::string> session_ids;   ///< "$N"
    std::set<std::string> pane_ids;      ///< "%N" ($TMUX_PANE)

    /// True when `session_id` names a listed session name, session id or pane id.
    /// Meaningful only when state is ok.
    bool has(std::string_view session_id) const;
};

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

/// Parses list-panes output (one "session_id<TAB>pane_id<TAB>session_name" per line).
TmuxFacts parse_tmux_listing(std::string_view output);

} // namespace agentlock
