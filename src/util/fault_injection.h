// Fault injection for tests and `ftccl_run --drop`: with FTCCL_FAULT_INJECTION=1,
// SIGUSR2 makes this process silently drop all its traffic, on the health channel and
// on the data path, as if its links were cut. Off (and no handler installed) otherwise.
#pragma once

namespace ftccl {

// Installs the SIGUSR2 hook once, when FTCCL_FAULT_INJECTION=1.
void installFaultHooks();
// True once the process was told to drop everything.
bool faultDropAll();

}  // namespace ftccl
