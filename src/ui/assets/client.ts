/**
 * The page's only script (an ES module served as a file, so the CSP needs no inline script):
 * copy buttons for pull commands, and delete buttons that ask first and then call the JSON API.
 * Everything else works without it. Kept as text here so it ships inside dist/ with no build step.
 */
export const CLIENT = `
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); return; }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'sr-only';
  document.body.appendChild(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

document.addEventListener('click', async (event) => {
  const target = event.target instanceof Element ? event.target.closest('button') : null;
  if (!target) return;
  const from = target.dataset.copyFrom;
  if (from) {
    const source = document.getElementById(from);
    if (!source) return;
    try {
      await copyText(source.textContent || '');
      target.textContent = 'Copied';
    } catch {
      target.textContent = 'Select and copy';
    }
    setTimeout(() => { target.textContent = 'Copy'; }, 1500);
    return;
  }
  const repo = target.dataset.deleteRepo;
  const ref = target.dataset.deleteRef;
  if (repo && ref) {
    if (!confirm('Delete ' + repo + (ref.includes(':') ? '@' : ':') + ref + '? This cannot be undone.')) return;
    target.disabled = true;
    const res = await fetch('/_stowage/api/repositories/' + repo + '/-/manifests/' + encodeURIComponent(ref), {
      method: 'DELETE', credentials: 'same-origin', headers: { accept: 'application/json' },
    });
    if (res.ok) {
      await res.text();
      location.href = ref.includes(':') ? '/ui/r/' + repo : location.href;
    } else {
      let message = res.status + ' ' + res.statusText;
      try { message = (await res.json()).errors[0].message; } catch {}
      alert('Not deleted: ' + message);
      target.disabled = false;
    }
  }
});
`;
