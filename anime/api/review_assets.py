"""The review room's style and keyboard script, kept apart from the HTML they dress.

Keys (ignored while typing, except Enter and Escape in a comment box):
  j / k        next / previous cut (among those the filters show); the reel jumps to it
  a            approve the current cut
  r            reject: the comment box takes the focus, Enter sends the rejection
  left / right one frame back / on in the current cut's clip; space plays or pauses it
"""

STYLE = """
:root{--bg:#f4f5f7;--card:#fff;--line:#d9dce3;--ink:#1d2330;--soft:#5d6575;--accent:#3559d6;
--passed:#1f8a46;--failed:#c0392b;--review:#d68910;--none:#8a8f99}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:var(--bg);color:var(--ink)}
header.top{position:sticky;top:0;z-index:5;background:#1d2330;color:#fff;padding:.6em 1.2em;
display:flex;flex-wrap:wrap;gap:.6em 1.4em;align-items:center}
header.top h1{font-size:1.1em;margin:0;font-weight:600}
header.top label{font-size:.9em;color:#cfd5e2}
header.top input,header.top select{font:inherit;padding:2px 6px;border-radius:4px;border:0}
.keys{font-size:.8em;color:#aab3c5}
kbd{background:#39415a;border-radius:3px;padding:0 4px;color:#fff}
#player{padding:.8em 1.2em;background:#0f131c}
#reel{width:100%;max-height:46vh;background:#000;display:block}
#markers{position:relative;height:22px;margin-top:4px;background:#262c3a;border-radius:3px}
.marker{position:absolute;top:0;height:22px;border:0;border-right:1px solid #0f131c;padding:0;
cursor:pointer;font-size:10px;color:#fff;overflow:hidden;white-space:nowrap}
.marker.animation{background:var(--passed)}.marker.keyframe{background:#2e6fb0}
.marker.attempt{background:var(--failed)}.marker.slate{background:var(--none)}
.marker.current{outline:2px solid #fff;z-index:2}
.note{color:#aab3c5;padding:.4em 0;margin:0}.note a{color:#9fb4ff}
main{padding:.8em 1.2em;max-width:1400px;margin:auto}
article.cut{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--none);
border-radius:6px;margin:0 0 .9em;padding:.7em .9em;outline:none}
article.cut[data-status=passed]{border-left-color:var(--passed)}
article.cut[data-status=failed],article.cut[data-status=error]{border-left-color:var(--failed)}
article.cut[data-status=needs_review]{border-left-color:var(--review)}
article.cut.current{box-shadow:0 0 0 3px var(--accent)}
article.cut>header{display:flex;gap:.8em;align-items:baseline;flex-wrap:wrap}
article.cut h2{font-size:1.05em;margin:0}
.badge{font-size:.8em;padding:1px 8px;border-radius:10px;background:var(--none);color:#fff}
.badge.passed{background:var(--passed)}.badge.failed,.badge.error{background:var(--failed)}
.badge.needs_review{background:var(--review)}
.desc{color:var(--soft);margin:.2em 0 .5em}
.grid{display:grid;grid-template-columns:minmax(240px,400px) 1fr minmax(140px,260px);gap:1em}
@media (max-width:1000px){.grid{grid-template-columns:1fr 1fr}}
video.clip,.grid img.output{width:100%;background:#000;border-radius:4px}
.refs{display:flex;flex-wrap:wrap;gap:.4em}.refs figure{margin:0;font-size:.8em;text-align:center}
.refs img{width:110px;border-radius:4px;border:1px solid var(--line)}
table{border-collapse:collapse;font-size:.85em;width:100%}
td,th{border-bottom:1px solid var(--line);padding:2px 6px;text-align:left}
.passed{color:var(--passed)}.failed{color:var(--failed)}.needs_review{color:var(--review)}
.badge.passed,.badge.failed,.badge.needs_review,.badge.error{color:#fff}
.strip{display:flex;gap:.4em;overflow-x:auto;margin:.5em 0}
.strip figure{margin:0;font-size:.75em;text-align:center;color:var(--soft)}
.strip img{height:56px;border-radius:3px;border:2px solid var(--line)}
.strip figure.speaking img{border-color:var(--accent)}
form.decide{display:flex;gap:.5em;align-items:center;flex-wrap:wrap;margin-top:.4em}
form.decide input.comment{flex:1;min-width:14em;padding:3px 6px}
body.js form.decide .reviewer-field{display:none}
button{font:inherit;border-radius:4px;border:1px solid var(--line);padding:2px 10px;cursor:pointer}
button[value=approved]{background:#e5f5eb}button[value=rejected]{background:#fbe9e7}
.decided{font-weight:600}
.continuity{font-size:.85em;color:var(--soft);margin:-.5em 0 .9em 1.2em}
details{margin-top:.4em}details pre{white-space:pre-wrap;font-size:.8em}
#flash{position:fixed;bottom:1em;right:1em;background:#1d2330;color:#fff;padding:.5em 1em;
border-radius:4px;display:none}
"""

SCRIPT = """
(() => {
document.body.classList.add('js');
const reel = document.getElementById('reel');
const fps = reel ? +reel.dataset.fps : 0;
const who = document.getElementById('reviewer');
who.value = localStorage.getItem('reviewer') || who.value;
let current = null;
const visible = () => [...document.querySelectorAll('article.cut')].filter(c => !c.hidden);
const flash = (text) => {
  const f = document.getElementById('flash'); f.textContent = text; f.style.display = 'block';
  clearTimeout(flash.t); flash.t = setTimeout(() => { f.style.display = 'none'; }, 4000);
};
function select(card, seek) {
  if (!card) return;
  if (current) current.classList.remove('current');
  document.querySelectorAll('.marker.current').forEach(m => m.classList.remove('current'));
  current = card; card.classList.add('current');
  const marker = document.querySelector(`.marker[data-cut="${card.dataset.cut}"]`);
  if (marker) marker.classList.add('current');
  card.focus({preventScroll: true}); card.scrollIntoView({block: 'nearest'});
  if (seek && reel && card.dataset.start !== '') reel.currentTime = +card.dataset.start / fps;
  document.body.dataset.current = card.dataset.cut;
}
function move(step) {
  const list = visible(); if (!list.length) return;
  const at = list.indexOf(current);
  select(list[at < 0 ? 0 : Math.max(0, Math.min(list.length - 1, at + step))], true);
}
async function decide(card, outcome) {
  if (!card) { flash('choose a cut first (j / k)'); return; }
  const reviewer = who.value.trim();
  if (!reviewer) { flash('your name first: it is stored with the decision'); who.focus(); return; }
  localStorage.setItem('reviewer', reviewer);
  const comment = card.querySelector('input.comment');
  const response = await fetch(`${location.pathname}/cuts/${card.dataset.cut}`, {
    method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({phase: card.dataset.phase, outcome, reviewer, comment: comment.value}),
  });
  const body = await response.json();
  if (!response.ok) { flash(body.error || 'not stored'); return; }
  const status = outcome === 'approved' ? 'passed' : 'failed';
  card.dataset.status = status;
  const badge = card.querySelector('.badge');
  badge.className = 'badge ' + status; badge.textContent = outcome;
  card.querySelector('.decided').textContent = `${outcome} by ${reviewer}` +
    (body.comment ? `: ${body.comment}` : '');
  comment.value = ''; delete card.dataset.pending;
  document.body.dataset.decisions = (+(document.body.dataset.decisions || 0) + 1).toString();
  flash(`${card.dataset.label}: ${outcome}`);
}
function step(card, frames) {
  const clip = card && card.querySelector('video.clip'); if (!clip) return;
  clip.pause();
  const rate = +card.dataset.reelFps || +card.dataset.fps || 24;
  const start = +clip.dataset.start, end = +clip.dataset.end;
  clip.currentTime = Math.max(start, Math.min(end - 1 / rate, clip.currentTime + frames / rate));
}
document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (t.matches('input, textarea, select')) {
    if (t.matches('input.comment') && e.key === 'Enter') {
      e.preventDefault();
      const card = t.closest('article.cut');
      if (card.dataset.pending === 'reject') decide(card, 'rejected');
      card.focus();
    } else if (e.key === 'Escape') { t.blur(); if (current) current.focus(); }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const keys = {
    j: () => move(1), k: () => move(-1), a: () => decide(current, 'approved'),
    r: () => { if (!current) return; current.dataset.pending = 'reject';
               current.querySelector('input.comment').focus(); },
    ArrowRight: () => step(current, 1), ArrowLeft: () => step(current, -1),
    ' ': () => { const c = current && current.querySelector('video.clip');
                 if (c) { c.paused ? c.play() : c.pause(); } },
  };
  if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
});
document.querySelectorAll('form.decide').forEach(form => form.addEventListener('submit', (e) => {
  e.preventDefault();
  decide(form.closest('article.cut'), e.submitter ? e.submitter.value : 'approved');
}));
document.querySelectorAll('.marker').forEach(m => m.addEventListener('click', () =>
  select(document.getElementById('cut-' + m.dataset.cut), true)));
document.querySelectorAll('article.cut').forEach(c => c.addEventListener('click', (e) => {
  if (!e.target.closest('a, button, input, video')) select(c, true);
}));
document.querySelectorAll('video.clip').forEach(clip => clip.addEventListener('timeupdate', () => {
  if (clip.currentTime >= +clip.dataset.end) {
    clip.pause(); clip.currentTime = +clip.dataset.start;
  }
}));
const filters = [...document.querySelectorAll('select.filter')];
function apply() {
  const [status, scene, character] = filters.map(f => f.value);
  document.querySelectorAll('article.cut').forEach(c => {
    c.hidden = !((!status || c.dataset.status === status) &&
                 (!scene || c.dataset.scene === scene) &&
                 (!character || c.dataset.characters.split(' ').includes(character)));
  });
  document.querySelectorAll('.continuity').forEach(p => {
    p.hidden = document.getElementById('cut-' + p.dataset.after).hidden;
  });
  document.getElementById('shown').textContent = visible().length;
}
filters.forEach(f => f.addEventListener('change', apply));
apply();
})();
"""
