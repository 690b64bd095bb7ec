// Each page of the site loads this module: it installs sw.js, which keeps an offline copy of
// the whole site. Only the site's own pages register it; <dpo-trainer> does not, so embedding
// the element never puts a service worker on someone else's page.
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register(new URL('./sw.js', import.meta.url))
    .catch((error) => console.warn(`no offline copy: ${error.message}`));
}
