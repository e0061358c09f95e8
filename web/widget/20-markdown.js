// Safe Markdown subset, built with DOM APIs only (never innerHTML): paragraphs, line breaks, lists, headings as bold lines,
// **bold**, *italic*, `inline code`, ``` code blocks, [links](url) and bare http(s) URLs. Links only http:, https:, mailto:.
var INLINE = /(`+)([^`]+?)\1|\*\*(\S(?:[\s\S]*?\S)?)\*\*|\*(\S(?:[^*]*?\S)?)\*|\[([^\]\n]+)\]\(\s*<?([^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)>?\s*\)|(https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"*])/;

function link(text, url) {
  return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: text });
}

function inline(el, s) {
  var m, u;
  while ((m = INLINE.exec(s))) {
    el.append(s.slice(0, m.index));
    if (m[1]) el.append(h('code', { text: m[2] }));
    else if (m[3]) el.append(inline(h('strong'), m[3]));
    else if (m[4]) el.append(inline(h('em'), m[4]));
    else if (m[5]) el.append((u = safeUrl(m[6])) ? link(m[5], u) : m[5]);
    else el.append(link(m[7], m[7]));
    s = s.slice(m.index + m[0].length);
  }
  el.append(s);
  return el;
}

function md(text) {
  var f = D.createDocumentFragment(), lines = String(text).split('\n'), para = null, list = null, m, i, l, code, tag;
  for (i = 0; i < lines.length; i++) {
    l = lines[i];
    if (/^\s*```/.test(l)) {
      para = list = null;
      code = [];
      while (++i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i]);
      f.append(h('pre', 0, [h('code', { text: code.join('\n') })]));
    } else if (!l.trim()) {
      para = list = null;
    } else if ((m = /^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/.exec(l))) {
      tag = m[1] ? 'ul' : 'ol';
      para = null;
      if (!list || list.localName != tag) {
        list = f.appendChild(h(tag));
        if (m[2] && m[2] != '1') list.start = +m[2];
      }
      list.append(inline(h('li'), m[3]));
    } else if (list && /^\s/.test(l)) {
      list.lastChild.append(h('br'));
      inline(list.lastChild, l.trim());
    } else if ((m = /^#{1,6}\s+(.*)/.exec(l))) {
      para = list = null;
      f.append(inline(h('p', { class: 'h' }), m[1]));
    } else {
      list = null;
      if (para) para.append(h('br'));
      else para = f.appendChild(h('p'));
      inline(para, l);
    }
  }
  return f;
}
