/// The dashboard's Mustache templates, stylesheet and script, compiled into the binary (an
/// installed pollerd has no resource folder to find). `{{x}}` is HTML-escaped; `{{{x}}}` is used
/// only for HTML the dashboard built itself (sparklines, rendered sections).
enum DashboardTemplates {
    static let layout = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="csrf-token" content="{{csrf}}">
        <title>{{title}} · pollerd</title>
        <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
        <link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script></head>
        <body>
        <header class="top">
        <a class="brand" href="/">pollerd</a>
        <nav>{{#nav}}<a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}</a>{{/nav}}</nav>
        <span class="who" id="who">{{#open}}open access: no token is configured{{/open}}{{^open}}<span id="role">{{role}}</span> session
        <form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button id="logout">Log out</button></form>{{/open}}</span>
        </header>
        {{#flash}}<p class="flash" id="flash" role="status">{{flash}}</p>{{/flash}}
        {{#warnings}}<p class="warning">{{.}}</p>{{/warnings}}
        <main>
        {{{content}}}
        </main>
        <footer>pollerd {{version}} · rendered {{now}} · <label><input type="checkbox" id="autorefresh"> refresh every 10 s</label></footer>
        </body></html>
        """

    /// A form's hidden fields: the CSRF token and where to come back to.
    static let hidden = """
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="back" value="{{back}}">
        """

    /// A job's action buttons. For a read session they are shown disabled: the server refuses them anyway.
    static let actions = """
        {{#actionable}}<div class="actions">
        <form method="post" action="/ui/jobs/{{id}}/run" class="inline">{{>hidden}}<button class="run"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Run now</button></form>
        {{#paused}}<form method="post" action="/ui/jobs/{{id}}/resume" class="inline">{{>hidden}}<button class="resume"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Resume</button></form>{{/paused}}
        {{^paused}}<details class="pause"><summary>Pause…</summary>
        <form method="post" action="/ui/jobs/{{id}}/pause" class="pause-form">{{>hidden}}
        <input name="note" class="note" maxlength="1024" placeholder="why (shown everywhere)" aria-label="pause note for {{id}}">
        <button class="pause"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Pause</button></form></details>{{/paused}}
        <details class="reset"><summary>Reset…</summary>
        <form method="post" action="/ui/jobs/{{id}}/reset" data-confirm="Reset {{id}}? Its cursor and error counters are cleared.">{{>hidden}}
        <label><input type="checkbox" name="forget_seen" value="1"> forget seen items too</label>
        <button class="reset"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Reset</button></form></details>
        </div>{{/actionable}}
        """

    static let jobs = """
        <h1>Jobs <small>{{shownText}}</small></h1>
        <form method="get" action="/" class="filters" id="filters">
        <label>Status <select name="status" id="filter-status">{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}} ({{count}})</option>{{/statuses}}</select></label>
        <label>Kind <select name="kind" id="filter-kind">{{#kinds}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}} ({{count}})</option>{{/kinds}}</select></label>
        <label>Id contains <input name="q" value="{{q}}" size="16"></label>
        <button id="apply-filters">Filter</button>{{#filtered}} <a href="/">clear</a>{{/filtered}}
        </form>
        {{#bulkable}}<form method="post" action="/ui/bulk" class="bulk" id="bulk" data-confirm="Apply to all {{matched}} matching jobs?">{{>hidden}}
        <input type="hidden" name="status" value="{{status}}"><input type="hidden" name="kind" value="{{kind}}"><input type="hidden" name="q" value="{{q}}">
        <span>All {{matched}} matching:</span>
        <input name="note" maxlength="1024" placeholder="pause note" aria-label="note for the bulk pause">
        <button name="action" value="pause" id="bulk-pause"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Pause all</button>
        <button name="action" value="resume" id="bulk-resume"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Resume all</button>
        </form>{{/bulkable}}
        <table class="jobs" id="jobs">
        <thead><tr><th>Job</th><th>Kind</th><th>Status</th><th>Last run</th><th>Next run</th><th>Last error</th><th title="items new in the last tick, and per tick over the ticks shown">New / tick</th><th title="durations of the recent ticks, oldest left; grey marks a skipped slot, red an error">Recent ticks</th><th title="the daemon (host:pid) that holds the job's lease now, or ran it last">Daemon</th><th>Actions</th></tr></thead>
        <tbody>
        {{#jobs}}<tr id="job-{{id}}" data-status="{{status}}">
        <td class="id"><a href="/jobs/{{id}}">{{id}}</a></td>
        <td>{{kind}}</td>
        <td class="status"><span class="badge {{status}}">{{statusLabel}}</span>{{#stale}} <span class="badge stale">stale</span>{{/stale}}{{#note}}<div class="note">{{note}}</div>{{/note}}</td>
        <td><span title="{{lastRunAt}}">{{lastRun}}</span></td>
        <td><span title="{{nextRunAt}}">{{nextRun}}</span></td>
        <td class="err">{{error}}</td>
        <td class="num">{{newLast}}{{#newPerTick}}<small> · {{newPerTick}}</small>{{/newPerTick}}</td>
        <td>{{{sparkline}}}</td>
        <td class="daemon">{{daemon}}{{#ticking}} <small>ticking</small>{{/ticking}}</td>
        <td>{{>actions}}</td>
        </tr>{{/jobs}}
        {{^jobs}}<tr><td colspan="10" class="empty">No job matches.</td></tr>{{/jobs}}
        </tbody></table>
        {{#pages}}<nav class="pages">{{#prev}}<a href="{{prev}}" rel="prev">← previous</a>{{/prev}} page {{page}} of {{pageCount}} {{#next}}<a href="{{next}}" rel="next">next →</a>{{/next}}</nav>{{/pages}}
        <h2>Daemons</h2>
        <table class="daemons" id="daemons"><thead><tr><th>Host</th><th>Pid</th><th>Jobs</th><th>Job file</th><th>Started</th><th title="how long it counts as alive without another heartbeat">Alive for</th></tr></thead><tbody>
        {{#daemons}}<tr><td>{{host}}</td><td class="num">{{pid}}</td><td class="num">{{jobs}}</td><td>{{jobFile}}</td><td title="{{startedAt}}">{{started}}</td><td>{{aliveFor}}</td></tr>{{/daemons}}
        {{^daemons}}<tr><td colspan="6" class="empty">No live daemon on the state store.</td></tr>{{/daemons}}
        </tbody></table>
        """

    static let job = """
        <h1>{{id}} <span class="badge {{status}}" id="job-status">{{statusLabel}}</span>{{#stale}} <span class="badge stale">stale</span>{{/stale}}</h1>
        {{#note}}<p class="note" id="job-note">Paused: {{note}}</p>{{/note}}
        {{#fileError}}<p class="error">{{fileError}}</p>{{/fileError}}
        <section class="grid">
        <dl class="facts">
        <dt>Kind</dt><dd>{{kind}}</dd>
        <dt>Last run</dt><dd title="{{lastRunAt}}">{{lastRun}} {{#lastStatus}}({{lastStatus}}{{#lastDuration}}, {{lastDuration}}{{/lastDuration}}){{/lastStatus}}</dd>
        <dt>Next run</dt><dd title="{{nextRunAt}}">{{nextRun}}</dd>
        <dt>Last success</dt><dd title="{{lastOkAt}}">{{lastOk}}</dd>
        <dt>Last error</dt><dd class="err">{{lastError}}</dd>
        <dt>Errors in a row</dt><dd>{{consecutiveErrors}}</dd>
        <dt>Ticks</dt><dd>{{ticksTotal}} · items seen {{itemsSeen}}</dd>
        <dt>Cursor</dt><dd><code class="cursor" id="cursor">{{cursorPreview}}</code> {{cursorSize}}</dd>
        <dt>Lease</dt><dd>{{lease}}</dd>
        </dl>
        <div>{{>actions}}
        <h2>Why</h2><pre class="explain" id="explain">{{explain}}</pre></div>
        </section>
        <h2>Recent ticks</h2>
        <p>{{{sparkline}}}</p>
        <table class="ticks" id="ticks"><thead><tr><th>Tick</th><th>Slot</th><th>Started</th><th>Duration</th><th>Status</th><th>Found</th><th>New</th><th>Duplicates</th><th>Cursor</th><th>Error or reason</th></tr></thead><tbody>
        {{#ticks}}<tr class="{{rowClass}}"><td class="num">{{tick}}</td><td>{{slot}}</td><td title="{{startedAt}}">{{started}}</td><td class="num">{{duration}}</td><td>{{status}}</td><td class="num">{{found}}</td><td class="num">{{new}}</td><td class="num">{{duplicates}}</td><td>{{#cursorChanged}}changed{{/cursorChanged}}</td><td class="err">{{error}}</td></tr>{{/ticks}}
        {{^ticks}}<tr><td colspan="10" class="empty">No tick kept yet.</td></tr>{{/ticks}}
        </tbody></table>
        <h2>Cursor history</h2>
        <table class="cursors" id="cursors"><thead><tr><th>Tick</th><th>Committed</th><th>Items</th><th>Cursor</th><th></th></tr></thead><tbody>
        {{#cursors}}<tr><td class="num">{{tick}}</td><td title="{{startedAt}}">{{started}}</td><td class="num">{{items}}</td><td><code class="cursor">{{preview}}</code> {{size}}</td>
        <td><form method="post" action="/ui/jobs/{{id}}/cursor" class="inline" data-confirm="Rewind {{id}} to the cursor of tick {{tick}}?">{{>hidden}}<input type="hidden" name="rewind_to_tick" value="{{tick}}"><button{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Rewind to this</button></form></td></tr>{{/cursors}}
        {{^cursors}}<tr><td colspan="5" class="empty">No kept tick changed the cursor.</td></tr>{{/cursors}}
        </tbody></table>
        {{#actionable}}<details class="set-cursor"><summary>Set the cursor by hand…</summary>
        <form method="post" action="/ui/jobs/{{id}}/cursor" data-confirm="Replace the cursor of {{id}}?">{{>hidden}}
        <label>base64url (empty clears it) <input name="cursor" size="48" maxlength="1400000"></label><input type="hidden" name="set" value="1">
        <button{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Set cursor</button></form></details>{{/actionable}}
        <h2>Outbox</h2>
        {{>lanes}}
        <h2>Dead letters</h2>
        {{>letters}}
        <h2>Audit</h2>
        {{>auditTable}}
        """

    static let lanes = """
        <table class="lanes"><thead><tr><th>Job</th><th>Sink</th><th>Pending</th><th>Attempts</th><th>Next attempt</th><th>Oldest item</th><th>Delivered</th><th>Retried</th><th>Dead-lettered</th><th>Last error</th></tr></thead><tbody>
        {{#lanes}}<tr><td><a href="/jobs/{{job}}">{{job}}</a></td><td>{{sink}}</td><td class="num">{{pending}}</td><td class="num">{{attempts}}</td><td>{{nextAttempt}}</td><td>{{oldest}}</td><td class="num">{{delivered}}</td><td class="num">{{retried}}</td><td class="num">{{deadLettered}}</td><td class="err">{{error}}</td></tr>{{/lanes}}
        {{^lanes}}<tr><td colspan="10" class="empty">No outbox lane.</td></tr>{{/lanes}}
        </tbody></table>
        """

    static let letters = """
        <form method="post" action="/ui/dlq" id="dlq-form">{{>hidden}}
        <table class="letters"><thead><tr><th></th><th>Id</th><th>Job</th><th>Sink</th><th>Key</th><th>Attempts</th><th>Failed</th><th>Last error</th></tr></thead><tbody>
        {{#letters}}<tr><td><input type="checkbox" name="ids" value="{{id}}" aria-label="select dead letter {{id}}"></td><td class="num">{{id}}</td><td><a href="/jobs/{{job}}">{{job}}</a></td><td>{{sink}}</td><td><code>{{key}}</code></td><td class="num">{{attempts}}</td><td title="{{failedAt}}">{{failed}}</td><td class="err">{{error}}</td></tr>{{/letters}}
        {{^letters}}<tr><td colspan="8" class="empty">No dead letter.</td></tr>{{/letters}}
        </tbody></table>
        {{#hasLetters}}<p class="dlq-actions">
        <button name="action" value="replay"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Replay selected</button>
        <button name="action" value="drop" data-confirm="Drop the selected dead letters for good?"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Drop selected</button>
        {{#scopeJob}}<input type="hidden" name="scope_job" value="{{scopeJob}}">{{/scopeJob}}
        <button name="action" value="replay_all"{{^canAct}} disabled title="needs an admin token"{{/canAct}}>Replay all{{#scopeJob}} of {{scopeJob}}{{/scopeJob}}</button>
        </p>{{/hasLetters}}
        </form>
        """

    static let auditTable = """
        <table class="audit"><thead><tr><th>When</th><th>Who</th><th>What</th><th>Job</th><th>Detail</th></tr></thead><tbody>
        {{#audit}}<tr><td title="{{atFull}}">{{at}}</td><td>{{actor}}</td><td>{{action}}</td><td>{{#job}}<a href="/jobs/{{job}}">{{job}}</a>{{/job}}</td><td>{{detail}}</td></tr>{{/audit}}
        {{^audit}}<tr><td colspan="5" class="empty">Nothing recorded.</td></tr>{{/audit}}
        </tbody></table>
        """

    static let outbox = """
        <h1>Outbox</h1>
        <p>Every job × sink lane with items or history. A lane retries its head item with backoff; items past their attempts go to the dead letters.</p>
        {{>lanes}}
        """

    static let dlq = """
        <h1>Dead letters <small>{{count}}</small></h1>
        <p>Items a sink refused for good, or kept refusing past their attempts. Replay queues them again at the end of their lane.</p>
        {{>letters}}
        """

    static let audit = """
        <h1>Audit log</h1>
        {{>auditTable}}
        """

    static let plugins = """
        <h1>Plugins</h1>
        <table class="plugins" id="plugins"><thead><tr><th>Plugin</th><th>Daemon</th><th>Lifecycle</th><th>Phase</th><th>Pid</th><th>Restarts</th><th>Ticks</th><th>Failures</th><th>Last error</th><th>Reported</th></tr></thead><tbody>
        {{#plugins}}<tr><td>{{plugin}}</td><td>{{daemon}}</td><td>{{lifecycle}}</td><td><span class="badge {{phaseClass}}">{{phase}}</span></td><td class="num">{{pid}}</td><td class="num">{{restarts}}</td><td class="num">{{ticks}}</td><td class="num">{{failures}}</td><td class="err">{{error}}</td><td title="{{reportedAt}}">{{reported}}</td></tr>
        {{#hasStderr}}<tr class="stderr"><td colspan="10"><details><summary>stderr, last {{stderrCount}} lines</summary><pre>{{stderr}}</pre></details></td></tr>{{/hasStderr}}{{/plugins}}
        {{^plugins}}<tr><td colspan="10" class="empty">No plugin has reported.</td></tr>{{/plugins}}
        </tbody></table>
        """

    /// A clock face in the brand's colours.
    static let favicon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#20262c"/><path d="M8 3.5V8l3 2" stroke="#7fb3ff" stroke-width="1.6" fill="none" stroke-linecap="round"/></svg>
        """

    static let stylesheet = """
        :root { --fg: #1d2125; --muted: #5f6b76; --line: #d9dee3; --bg: #fff; --head: #f4f6f8;
          --ok: #2e7d32; --err: #c62828; --warn: #b26a00; --skip: #9aa5b1; --info: #1565c0; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
        header.top { display: flex; gap: 1.5em; align-items: center; padding: .6em 1.2em; background: #20262c; color: #fff; }
        header.top a { color: #dfe6ec; text-decoration: none; }
        header.top a.brand { font-weight: 700; color: #fff; }
        header.top nav a { margin-right: 1em; }
        header.top nav a[aria-current] { color: #fff; border-bottom: 2px solid #7fb3ff; }
        header.top .who { margin-left: auto; color: #b8c2cc; }
        header.top .who button { margin-left: .5em; }
        main { padding: 1em 1.2em; }
        main.narrow { max-width: 32em; margin: 3em auto; }
        footer { padding: 1em 1.2em; color: var(--muted); border-top: 1px solid var(--line); }
        h1 .badge { font-size: 14px; font-weight: 600; vertical-align: middle; }
        h1 small { font-weight: 400; color: var(--muted); font-size: 60%; }
        h2 { margin-top: 1.6em; font-size: 1.1em; }
        table { border-collapse: collapse; width: 100%; }
        th, td { padding: .35em .5em; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
        th { background: var(--head); font-weight: 600; white-space: nowrap; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        td.err, dd.err, .err { color: var(--err); max-width: 28em; overflow-wrap: anywhere; }
        td.empty { color: var(--muted); text-align: center; padding: 1.5em; }
        td.id { white-space: nowrap; }
        td.id a { font-weight: 600; }
        tr.skipped td { color: var(--muted); }
        .badge { display: inline-block; padding: 0 .45em; border-radius: 3px; font-size: 90%; background: #e8ecef; white-space: nowrap; }
        .badge.ok, .badge.running, .badge.ready { background: #e3f1e4; color: var(--ok); }
        .badge.failing, .badge.breaker_open, .badge.invalid, .badge.crashed, .badge.failed { background: #fbe4e4; color: var(--err); }
        .badge.backing_off, .badge.backlogged, .badge.stale, .badge.restarting { background: #fdf0d9; color: var(--warn); }
        .badge.paused, .badge.done, .badge.removed, .badge.elsewhere, .badge.never_ran { background: #eceff1; color: var(--muted); }
        .note { color: var(--warn); font-size: 90%; overflow-wrap: anywhere; }
        .flash { margin: 0; padding: .6em 1.2em; background: #e3f1e4; color: var(--ok); }
        .warning { margin: 0; padding: .5em 1.2em; background: #fdf0d9; color: #6d4100; border-bottom: 1px solid #f3d9a6; }
        .error { color: var(--err); }
        form.inline { display: inline; }
        .filters, .bulk { display: flex; flex-wrap: wrap; gap: .8em; align-items: center; margin: .6em 0; }
        .bulk { padding: .5em; background: var(--head); border: 1px solid var(--line); }
        .actions { display: flex; flex-wrap: wrap; gap: .3em; align-items: flex-start; }
        .actions details { display: inline-block; }
        .actions details summary { cursor: pointer; padding: .1em .5em; border: 1px solid var(--line); border-radius: 3px; background: #fff; list-style: none; }
        .actions details[open] { padding: .3em; border: 1px solid var(--line); background: var(--head); }
        button { font: inherit; padding: .15em .6em; border: 1px solid #aab4be; border-radius: 3px; background: #fff; cursor: pointer; }
        button:hover:not([disabled]) { background: #eef3f8; }
        button[disabled] { color: #9aa5b1; cursor: not-allowed; }
        input, select { font: inherit; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25em 1em; margin: 0; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        section.grid { display: grid; grid-template-columns: minmax(20em, 1fr) minmax(20em, 1fr); gap: 2em; }
        pre.explain { white-space: pre-wrap; background: var(--head); padding: .6em; border: 1px solid var(--line); }
        code.cursor { font-size: 90%; overflow-wrap: anywhere; }
        nav.pages { margin: 1em 0; display: flex; gap: 1em; }
        form.login { display: grid; gap: .5em; margin: 1.5em 0; }
        .hint { color: var(--muted); font-size: 90%; }
        svg.spark rect.ok { fill: var(--ok); }
        svg.spark rect.err { fill: var(--err); }
        svg.spark rect.skip { fill: var(--skip); }
        svg.spark rect.other { fill: var(--info); }
        svg.spark line.base { stroke: var(--line); }
        @media (max-width: 900px) { section.grid { grid-template-columns: 1fr; } }
        """

    /// The little script: confirmation of destructive forms, the pause note's focus, and the
    /// auto-refresh (off by default; it waits while a form is open or the tab is hidden).
    static let script = """
        "use strict";
        document.addEventListener("submit", function (e) {
          var form = e.target;
          var button = e.submitter;
          var question = (button && button.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
          if (question && !window.confirm(question)) { e.preventDefault(); }
        });
        document.addEventListener("toggle", function (e) {
          var d = e.target;
          if (d.tagName === "DETAILS" && d.open) { var i = d.querySelector("input[name=note], input[name=cursor]"); if (i) { i.focus(); } }
        }, true);
        (function () {
          var box = document.getElementById("autorefresh");
          if (!box) { return; }
          var key = "pollerd.autorefresh";
          box.checked = window.localStorage.getItem(key) === "1";
          box.addEventListener("change", function () { window.localStorage.setItem(key, box.checked ? "1" : "0"); });
          window.setInterval(function () {
            if (!box.checked || document.hidden) { return; }
            var a = document.activeElement;
            if (a && (a.tagName === "INPUT" || a.tagName === "SELECT") && a !== box) { return; }
            if (document.querySelector("main details[open]")) { return; }
            window.location.reload();
          }, 10000);
        })();
        """
}
