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
  }
});
// A refreshed queue that lost rows leaves "select all" checked only while every row still is.
document.addEventListener('htmx:afterSwap', (e) => {
  if (e.detail.target && e.detail.target.id === 'queue-body') {
    const all = document.getElementById('select-all');
    const boxes = [...document.querySelectorAll('#queue-body input.sel')];
    if (all) all.checked = boxes.length > 0 && boxes.every((b) => b.checked);
  }
});
