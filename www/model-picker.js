// The full page's model choice: a fresh model of a preset size, or a Hugging Face folder the
// user picks (folder picker, multi-file picker, or a drop of the folder or its files). It shows
// which files were found and what config.json says, keeps max_length within the model's
// positions, and hands the folder's bytes to app.js at each start. The folder logic itself
// is in hf-folder.js; this module is only its view.
import { CHAT_TEMPLATE, chooseFolder, compact, dropEntries, inputEntries, inspectFolder, OPTIONAL, readFolder, WANTED } from './hf-folder.js';
import { defaults } from './settings.js';

export const el = (tag, className, text) => Object.assign(document.createElement(tag), { className, textContent: text ?? '' });

// Emits `change` whenever `ready` or the summary may have changed, and `picked` when a new
// folder was read (the page clears an error that was about the previous one).
// Makes `zone` a drop target (highlighted while something is dragged over it) that hands
// the dropped DataTransfer to `handle`.
export function onDrop(zone, handle) {
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    handle(event.dataTransfer);
  });
}

export class ModelPicker extends EventTarget {
  folder = null; // chooseFolder's result
  summary = null; // inspectFolder's result
  #picks = 0; // a newer pick makes an older inspection's answer stale
  #clamp = null; // {from, to}: the max_length this picker lowered, to restore for a preset
  #note = '';

  constructor(form, root) {
    super();
    this.form = form;
    this.ui = { root, drop: root.querySelector('.drop'), status: root.querySelector('.model-status'),
      dir: root.querySelector('input[webkitdirectory]'), files: root.querySelector('input[multiple]') };
    for (const radio of form.elements.model_source) radio.addEventListener('change', () => this.#sourceChanged());
    for (const input of [this.ui.dir, this.ui.files]) {
      input.addEventListener('change', () => {
        if (input.files.length) this.#pick(Promise.resolve(inputEntries(input.files)));
        input.value = ''; // picking the same folder again (after fixing it on disk) fires again
      });
    }
    onDrop(this.ui.drop, (transfer) => this.#pick(dropEntries(transfer)));
    this.#sourceChanged();
  }

  get usesFolder() { return this.form.elements.model_source.value === 'folder'; }

  // Training can start: a preset, or a folder with every required file.
  get ready() { return !this.usesFolder || Boolean(this.summary && this.summary.problems.length === 0); }

  // The picked folder in words, for the page's backend line.
  get label() {
    const c = this.summary?.config;
    return `${this.#title.toLowerCase()}${c?.family ? ` (${c.family}, ${c.layers} layers)` : ''}`;
  }

  // The folder's files for the start message ({name: Uint8Array}), or undefined for a preset.
  // Lowers max_length first when it exceeds the model's positions (the wasm would refuse it).
  async startFiles() {
    if (!this.usesFolder) return undefined;
    if (!this.ready) throw new Error('pick a model folder with config.json, model.safetensors and tokenizer.json first');
    this.#limitMaxLength();
    this.#render();
    return readFolder(this.folder);
  }

  get #title() { return this.summary?.name ? `Folder “${this.summary.name}”` : 'The picked files'; }

  #sourceChanged() {
    this.#showFolderControls(this.usesFolder);
    this.#limitMaxLength();
    this.#render();
    this.dispatchEvent(new Event('change'));
  }

  // The folder's drop zone and pickers, or the preset's size: one or the other.
  #showFolderControls(folder) {
    this.ui.drop.hidden = !folder;
    this.form.elements.preset.disabled = folder;
    this.form.elements.preset.closest('label').hidden = folder;
  }

  async #pick(entriesPromise) {
    const pick = ++this.#picks;
    this.form.elements.model_source.value = 'folder';
    this.#showFolderControls(true);
    this.summary = null;
    this.#note = '';
    this.ui.status.replaceChildren(el('div', 'check', 'Reading the folder…'));
    this.dispatchEvent(new Event('change'));
    let folder;
    let summary;
    try {
      folder = chooseFolder(await entriesPromise);
      summary = await inspectFolder(folder);
    } catch (error) {
      folder = null;
      summary = { name: '', present: [], problems: [`the files could not be read: ${error.message}`], warnings: [], ignored: [] };
    }
    if (pick !== this.#picks) return;
    Object.assign(this, { folder, summary });
    this.#limitMaxLength();
    this.#render();
    this.dispatchEvent(new Event('picked'));
    this.dispatchEvent(new Event('change'));
  }

  // A folder model cannot take more tokens than its position table (n_positions or
  // max_position_embeddings): lower the field to that and say so; give the old value back
  // when the page returns to a preset, unless the user has changed it since.
  #limitMaxLength() {
    const field = this.form.elements.max_length;
    const positions = this.usesFolder ? this.summary?.config?.positions : null;
    if (!Number.isInteger(positions) || positions < 2) {
      field.removeAttribute('max');
      if (this.#clamp && !this.usesFolder && Number(field.value) === this.#clamp.to) this.#setField(this.#clamp.from);
      this.#clamp = null;
      this.#note = '';
      return;
    }
    field.max = positions;
    const current = Number(field.value || defaults.max_length);
    if (current > positions) {
      this.#clamp = { from: this.#clamp?.from ?? current, to: positions };
      this.#setField(positions);
      this.#note = `Max length lowered from ${current} to ${positions} tokens: the model has ${positions} positions.`;
    }
  }

  #setField(value) {
    const field = this.form.elements.max_length;
    field.value = value;
    field.dispatchEvent(new Event('input', { bubbles: true })); // the URL hash follows the form
  }

  #render() {
    const { status } = this.ui;
    if (!this.usesFolder) return status.replaceChildren();
    const s = this.summary;
    if (!s) return status.replaceChildren(el('div', 'check', 'Pick the model’s folder (or drop it here): ' +
      'config.json, model.safetensors, tokenizer.json and, if it has them, tokenizer_config.json and chat_template.jinja.'));
    const c = s.config;
    const sizes = c ? [c.modelType ?? 'no model_type', c.layers != null && `${c.layers} layers`, c.width != null && `width ${c.width}`,
      c.heads != null && `${c.heads} heads`, c.vocab != null && `vocab ${c.vocab}`, c.positions != null && `${c.positions} positions`] : [];
    const ok = s.problems.length === 0 && s.warnings.length === 0;
    const items = [el('div', `check summary ${ok ? 'ok' : 'bad'}`,
      `${ok ? '✓' : '✗'} ${this.#title}${sizes.length ? `: ${sizes.filter(Boolean).join(' · ')}` : ''}`)];
    const list = el('ul', 'model-files');
    for (const name of WANTED) {
      const found = s.present.find((f) => f.name === name);
      const optional = OPTIONAL.includes(name);
      const item = el('li', found ? 'ok' : optional ? '' : 'bad', `${found ? '✓' : optional ? '–' : '✗'} ${name} `);
      const template = s.present.some((f) => f.name === CHAT_TEMPLATE);
      const absent = name === CHAT_TEMPLATE ? 'optional: absent (the chat template, if any, is tokenizer_config.json’s)'
        : `optional: absent (${template ? '' : 'no chat template; '}EOS from the tokenizer)`;
      let detail = found ? compact(found.size, 'B') : optional ? absent : 'missing';
      if (found && name === 'model.safetensors' && s.weights) {
        const w = s.weights;
        detail += ` · ${w.tensors} tensors · ${compact(w.parameters)} parameters · ${w.dtypes.join('/')}`;
      }
      item.append(el('small', '', detail));
      list.append(item);
    }
    items.push(list);
    for (const text of s.problems) items.push(el('div', 'check bad problem', text));
    for (const text of s.warnings) items.push(el('div', 'check bad warning', `${text} The trainer will most likely refuse it: pressing Train shows its reason.`));
    if (s.ignored.length) items.push(el('div', 'check', `${s.ignored.length} file${s.ignored.length === 1 ? '' : 's'} outside the model’s folder ignored.`));
    if (this.#note) items.push(el('div', 'check note', this.#note));
    status.replaceChildren(...items);
  }
}
