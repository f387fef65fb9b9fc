// The guest's one tap process per boot: `node dist/vm/test/vm/main.js SUITE...` runs the named
// test/vm/SUITE.vm.ts files in order. One process, because each Node start costs half a minute
// under TCG; each suite wraps itself in one top-level test, so its result is one line.
import t from 'tap'

// tap's default 30 s budget for a whole file would cut the suites off under emulation, where a
// run takes tens of minutes; scripts/test-vm.sh bounds the whole guest instead.
t.setTimeout(0)
for (const suite of process.argv.slice(2)) await import(`./${suite}.vm.js`)
