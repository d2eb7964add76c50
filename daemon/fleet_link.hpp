#pragma once
// Fleet mode's wiring in agentlockd: joins the fleet (FleetMember, a thread of its own) with
// this host's presence, and hands it the lock table's live local claims after each piece of work.

#include "event_log.hpp"
#include <agentlock/config.hpp>
#include <agentlock/fleet.hpp>
#include <agentlock/lock_table.hpp>

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <string>

namespace agentlock::daemon {

/// The fleet membership of one agentlockd, when its config has a fleet block.
class FleetLink {
public:
    /// Called on the loop thread when the fleet wants a full pass (its view changed).
    using PassWanted = std::function<void(std::string reason)>;

    /// Joins the fleet when `config.fleet` is set (else does nothing): its log events and pass
    /// requests are posted to `io`, where `log` and `pass_wanted` run.
    void join(const Config& config, boost::asio::io_context& io, EventLog& log,
              PassWanted pass_wanted);
    /// The member, or null outside fleet mode.
    FleetMember* member() const { return m_member.get(); }
    /// Hands the member the locks this host's own rule calls held in `table`: live, orphaned and
    /// held by their session.
    void publish(const LockTable& table);
    /// Leaves the fleet (its thread stops; its keys expire with its lease).
    void stop();

private:
    std::string m_hostname;
    std::unique_ptr<FleetMember> m_member;
};

} // namespace agentlock::daemon
