// What web.go's pageBundle gives the page shim's parts (session/page/*.js),
// which it runs as one strict-mode function: the texts of shimMessages.
declare const TEXT: Readonly<Record<string, string>>;
