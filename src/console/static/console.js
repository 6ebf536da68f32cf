// The review console's few behaviours that are not server round trips: the
// reviewer's name kept in this browser, and "select every item shown".
document.addEventListener('DOMContentLoaded', () => {
  const reviewer = document.getElementById('reviewer');
  if (reviewer && !reviewer.readOnly) {
    reviewer.value = localStorage.getItem('steadfast.reviewer') || '';
    reviewer.addEventListener('input', () => localStorage.setItem('steadfast.reviewer', reviewer.value));
  }
  const all = document.getElementById('select-all');
  if (all) {
    all.addEventListener('change', () => {
      for (const box of document.querySelectorAll('#queue-body input.sel')) box.checked = all.checked;
    });
    // Unselecting one row is no longer "select all".
    document.addEventListener('change', (e) => {
      if (e.target instanceof HTMLInputElement && e.target.matches('#queue-body input.sel') && !e.target.checked) all.checked = false;
    });
  }
});
// A refreshed queue: with "select all" checked every row shown stays selected (a refresh that
// was sent before the click must not undo it); otherwise it reads checked only while every row is.
document.addEventListener('htmx:afterSwap', (e) => {
  if (e.detail.target && e.detail.target.id === 'queue-body') {
    const all = document.getElementById('select-all');
    const boxes = [...document.querySelectorAll('#queue-body input.sel')];
    if (all && all.checked) for (const box of boxes) box.checked = true;
    else if (all) all.checked = boxes.length > 0 && boxes.every((b) => b.checked);
  }
});
