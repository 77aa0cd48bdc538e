/** The page's stylesheet (served as a file with a content hash in its name; no inline styles, so the CSP can forbid them). */
export const STYLE = `
:root { --fg: #1b1f24; --muted: #57606a; --bg: #fff; --line: #d0d7de; --accent: #0a58ca; --soft: #f6f8fa;
  --cache: #1a7f37; --fetched: #bc4c00; --local: #0a58ca; --danger: #b42318; font-family: system-ui, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); font-size: 15px; line-height: 1.45; }
a { color: var(--accent); }
.top { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--soft); }
.brand { font-weight: 700; text-decoration: none; color: var(--fg); font-size: 1.1rem; }
.top nav { display: flex; gap: 1rem; }
.top nav a { text-decoration: none; padding: .2rem .1rem; }
.top nav a[aria-current] { font-weight: 600; border-bottom: 2px solid var(--accent); }
.account { margin-left: auto; display: flex; gap: .6rem; align-items: center; }
main { padding: 1rem 1.2rem 3rem; max-width: 1280px; }
h1 { font-size: 1.5rem; margin: .4rem 0 .8rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
.muted { color: var(--muted); }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.search { display: flex; gap: .5rem; align-items: center; margin: .5rem 0 1rem; flex-wrap: wrap; }
.search input { padding: .4rem .5rem; min-width: 18rem; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
button { font: inherit; padding: .35rem .8rem; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); cursor: pointer; }
button:hover { background: var(--soft); }
button.danger { color: var(--danger); border-color: var(--danger); }
button.link { border: 0; background: none; color: var(--accent); text-decoration: underline; padding: 0; }
form.inline { display: inline; }
.tabs { list-style: none; display: flex; flex-wrap: wrap; gap: .4rem; padding: 0; margin: 0 0 .6rem; }
.tabs a { display: inline-block; padding: .3rem .7rem; border: 1px solid var(--line); border-radius: 999px; text-decoration: none; }
.tabs a[aria-current] { background: var(--accent); color: #fff; border-color: var(--accent); }
.tabs a[aria-current] .muted { color: #e6edf6; }
.count { font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.list td:first-child, .list th[scope=row] { overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; border: 1px solid var(--line); }
.badge.local { color: var(--local); border-color: var(--local); }
.badge.cached { color: var(--cache); border-color: var(--cache); }
.kind { font-size: .8rem; font-weight: 500; color: var(--muted); border: 1px solid var(--line); border-radius: 4px; padding: 0 .4rem; vertical-align: middle; }
code { font-family: ui-monospace, monospace; font-size: .9em; overflow-wrap: anywhere; }
.crumbs { margin: .2rem 0; color: var(--muted); overflow-wrap: anywhere; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .5rem 0 1rem; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.kv caption { text-align: left; font-weight: 600; padding: .4rem 0; }
.kv th { width: 30%; font-weight: 500; overflow-wrap: anywhere; }
.kv td { overflow-wrap: anywhere; }
.pull { list-style: none; padding: 0; margin: .3rem 0 1rem; }
.pull li { display: grid; grid-template-columns: 6.5rem 1fr auto; gap: .5rem; align-items: center; padding: .25rem 0; }
.pull .client { color: var(--muted); }
.pull .command { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: .3rem .5rem; }
.pull .note { grid-column: 2 / 4; color: var(--muted); font-size: .85rem; }
.pull-details summary { cursor: pointer; color: var(--accent); }
.pull-details[open] { min-width: 36rem; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .6rem; margin: .5rem 0 1rem; }
.tiles div { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
.tiles dt { color: var(--muted); font-size: .85rem; }
.tiles dd { margin: .2rem 0 0; font-size: 1.3rem; font-weight: 600; }
.chart svg { width: 100%; max-width: 760px; height: auto; }
.chart .axis { stroke: var(--line); }
.chart .tick { font-size: 11px; fill: var(--muted); }
.chart .series { fill: none; stroke-width: 2; }
.chart .series.cache { stroke: var(--cache); }
.chart .series.fetched { stroke: var(--fetched); }
.chart .series.local { stroke: var(--local); stroke-dasharray: 4 3; }
.legend { list-style: none; display: flex; gap: 1rem; padding: 0; margin: .3rem 0; flex-wrap: wrap; }
.swatch { display: inline-block; width: .9rem; height: .25rem; margin-right: .35rem; vertical-align: middle; }
.swatch.cache { background: var(--cache); } .swatch.fetched { background: var(--fetched); } .swatch.local { background: var(--local); }
.state { font-weight: 600; }
.state.closed { color: var(--cache); } .state.open { color: var(--danger); } .state.half-open { color: var(--fetched); }
.empty { padding: 1rem; background: var(--soft); border-radius: 6px; }
.error { color: var(--danger); font-weight: 600; }
.note { color: var(--muted); }
.login { display: grid; gap: .4rem; max-width: 22rem; }
.login input, .login textarea { padding: .4rem .5rem; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
.pager { margin: 1rem 0; }
ol.history li, ul.env li { margin: .15rem 0; }
meter { width: 14rem; vertical-align: middle; }
pre.command { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: .5rem .7rem; overflow-x: auto; }
`;
