// Sends the SAML message on to the service provider as soon as the page has loaded (the
// HTTP-POST binding). Without scripts, the page's button does the same.
(function () {
  var form = document.getElementById('saml-post');
  if (form && form.getAttribute('data-auto') === '1') form.submit();
}());
