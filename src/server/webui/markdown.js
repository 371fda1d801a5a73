// Markdown for model output, rendered to HTML that cannot carry markup of its own.
//
// Every piece of the input is HTML-escaped before any tag is added, so the only elements in the
// result are the ones made here (p, br, pre, code, strong, em, del, ul, ol, li, blockquote, h1-h6,
// hr, a), and no attribute value comes from the input except a link's href, which must be an
// http(s) or mailto URL (escaped). The result reaches the DOM only through setMarkdown and the
// page's one Trusted Types policy; the server's Content-Security-Policy refuses every other HTML
// sink and every inline script.
//
// Covered: fenced code blocks (``` or ~~~, with a language; an unclosed fence runs to the end,
// as while an answer streams), inline code, bold, italic, strikethrough, links and bare URLs,
// headings, bullet and numbered lists (nested by indentation), block quotes, rules, paragraphs
// (a single newline is a line break, as chat users write).

const ESCAPES = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'};

export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// A link target the page will follow: absolute http(s) or mailto only (no javascript:, data:,
// relative paths or protocol-relative URLs).
export function isSafeUrl(url) {
  return /^(https?:\/\/[^\s/]|mailto:[^\s])/i.test(url);
}

// Placeholders for spans rendered ahead of emphasis (code, links); the input's own control
// characters of this kind are removed first, so a placeholder can only be one made here.
const HOLD_OPEN = '\u0001';
const HOLD_CLOSE = '\u0002';

function link(href, labelHtml) {
  return `<a href="${escapeHtml(href)}" rel="noopener noreferrer nofollow" target="_blank">` +
         `${labelHtml}</a>`;
}

function emphasis(html) {
  return html.replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
      .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, '$1<strong>$2</strong>')
      .replace(/\*(?=[^\s*])([^*]*?[^\s*])\*/g, '<em>$1</em>')
      .replace(/\*([^\s*])\*/g, '<em>$1</em>')
      .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, '$1<em>$2</em>')
      .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>');
}

// One line (or a joined paragraph) of inline markdown -> HTML.
export function renderInline(text) {
  const held = [];
  const hold = (html) => `${HOLD_OPEN}${held.push(html) - 1}${HOLD_CLOSE}`;
  let s = text.replace(/[\u0001\u0002]/g, '');
  s = s.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g,
                (m, ticks, code) => hold(`<code>${escapeHtml(code.trim() || code)}</code>`));
  s = s.replace(/\[([^\]\n]+)\]\(\s*<?([^()\s<>]+)>?\s*\)/g, (m, label, url) => {
    if (!isSafeUrl(url)) return m;  // shown as the text it is
    return hold(link(url, emphasis(escapeHtml(label))));
  });
  s = s.replace(/\bhttps?:\/\/[^\s<>"'`\u0001\u0002]*[^\s<>"'`.,;:!?)\]\u0001\u0002]/g,
                (url) => hold(link(url, escapeHtml(url))));
  s = emphasis(escapeHtml(s));
  const restore = new RegExp(`${HOLD_OPEN}(\\d+)${HOLD_CLOSE}`, 'g');
  return s.replace(restore, (m, i) => held[Number(i)]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

function indentOf(line) {
  return line.match(/^\s*/)[0].replace(/\t/g, '    ').length;
}

function isBlockStart(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
         ITEM.test(line);
}

// A fenced code block from lines[i] (the opening fence); returns [html, next line].
function codeBlock(lines, i) {
  const [, fence, lang] = FENCE.exec(lines[i]);
  const body = [];
  let j = i + 1;
  while (j < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[j])) {
    body.push(lines[j]);
    j++;
  }
  const label = lang ? `<span class="code-lang">${escapeHtml(lang)}</span>` : '';
  const html = `<div class="code-block">${label}<pre><code>${escapeHtml(body.join('\n'))}` +
               `</code></pre></div>`;
  return [html, j + 1];
}

// A list starting at lines[i]: items at the first item's indentation, each with the lines
// indented under it (rendered as markdown of their own, so lists nest).
function list(lines, i) {
  const first = ITEM.exec(lines[i]);
  const base = indentOf(first[1]);
  const ordered = /\d/.test(first[2]);
  const items = [];
  let j = i;
  while (j < lines.length) {
    const m = ITEM.exec(lines[j]);
    if (m && indentOf(m[1]) === base && /\d/.test(m[2]) === ordered) {
      items.push([m[3]]);
    } else if (lines[j].trim() === '') {
      const next = lines[j + 1];
      if (next === undefined || (indentOf(next) <= base && !ITEM.test(next))) break;
      items[items.length - 1].push('');
    } else if (indentOf(lines[j]) > base || !isBlockStart(lines[j])) {
      const expanded = lines[j].replace(/\t/g, '    ');
      items[items.length - 1].push(expanded.slice(Math.min(indentOf(expanded), base + 4)));
    } else {
      break;
    }
    j++;
  }
  const start = ordered ? parseInt(first[2], 10) : 1;
  const open = ordered ? (start !== 1 ? `<ol start="${start}">` : '<ol>') : '<ul>';
  // An item's first lines (up to a blank line or a block) are its text; the rest are blocks.
  const body = items.map((item) => {
    let k = 1;
    while (k < item.length && item[k] !== '' && !isBlockStart(item[k])) k++;
    const text = renderInline(item.slice(0, k).join('\n')).replace(/\n/g, '<br>');
    return `<li>${text}${renderBlocks(item.slice(k))}</li>`;
  });
  return [`${open}${body.join('')}${ordered ? '</ol>' : '</ul>'}`, j];
}

function renderBlocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') {
      i++;
    } else if (FENCE.test(line)) {
      const [html, next] = codeBlock(lines, i);
      out.push(html);
      i = next;
    } else if (HEADING.test(line)) {
      const [, hashes, text] = HEADING.exec(line);
      out.push(`<h${hashes.length}>${renderInline(text)}</h${hashes.length}>`);
      i++;
    } else if (RULE.test(line)) {
      out.push('<hr>');
      i++;
    } else if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(QUOTE.exec(lines[i++])[1]);
      out.push(`<blockquote>${renderBlocks(quoted)}</blockquote>`);
    } else if (ITEM.test(line)) {
      const [html, next] = list(lines, i);
      out.push(html);
      i = next;
    } else {
      const para = [line];
      i++;
      while (i < lines.length && lines[i].trim() !== '' && !isBlockStart(lines[i])) para.push(lines[i++]);
      out.push(`<p>${renderInline(para.join('\n')).replace(/\n/g, '<br>')}</p>`);
    }
  }
  return out.join('');
}

// Markdown text -> HTML (a string of elements made here around escaped text).
export function renderMarkdown(text) {
  return renderBlocks(String(text).replace(/\r\n?/g, '\n').split('\n'));
}

// The page's only way to put HTML into the DOM (the CSP names this policy alone).
const policy = window.trustedTypes && window.trustedTypes.createPolicy
    ? window.trustedTypes.createPolicy('gannet-markdown', {createHTML: (html) => html})
    : null;

export function setMarkdown(element, text) {
  const html = renderMarkdown(text);
  element.innerHTML = policy ? policy.createHTML(html) : html;
}
