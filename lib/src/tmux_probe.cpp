// placeholder until implemented
namespace agentlock {}
